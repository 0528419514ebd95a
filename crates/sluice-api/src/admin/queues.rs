//! `GET /admin/v1/queues` and pause / resume of a queue.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::json;
use sluice_core::now_ms;

use super::auth::Actor;
use super::AdminState;
use crate::extract::QueueParam;
use crate::ApiError;

#[derive(Debug, Serialize)]
pub(crate) struct QueuesView {
    queues: Vec<QueueView>,
}

#[derive(Debug, Serialize)]
struct QueueView {
    name: String,
    pending: u64,
    published: u64,
    retrying: u64,
    dead: u64,
    /// Seconds since the oldest pending job was created; `null` when none.
    oldest_pending_age_seconds: Option<f64>,
    paused: bool,
    concurrency: ConcurrencyView,
    /// The workers' circuit breaker, as they record it in the store:
    /// `closed`, `open` or `half_open`.
    circuit: &'static str,
}

#[derive(Debug, Serialize)]
struct ConcurrencyView {
    /// Configured bounds of each worker process's pool.
    min: u32,
    max: u32,
    /// The adaptive limits the live worker processes reported, summed.
    limit: u64,
    /// How many worker processes reported one.
    workers: u64,
}

/// `200` with every configured queue, in configuration order (zero counts
/// for queues without jobs).
pub(crate) async fn list(State(state): State<AdminState>) -> Result<Json<QueuesView>, ApiError> {
    let stats = state.store().queue_stats().await?;
    let paused = state.store().paused_queues().await?;
    let circuits = state.store().circuits().await?;
    let now = now_ms();
    let limits = state.store().concurrency(now).await?;
    let queues = state
        .inner
        .queues
        .iter()
        .map(|q| {
            let s = stats.iter().find(|s| s.queue == q.name);
            let limit = limits.iter().find(|c| c.queue == q.name);
            let age = s
                .and_then(|s| s.oldest_pending_at)
                .map(|at| (now.saturating_sub(at)).max(0) as f64 / 1000.0);
            QueueView {
                name: q.name.clone(),
                pending: s.map_or(0, |s| s.pending),
                published: s.map_or(0, |s| s.published),
                retrying: s.map_or(0, |s| s.retrying),
                dead: s.map_or(0, |s| s.dead),
                oldest_pending_age_seconds: age,
                paused: paused.contains(&q.name),
                concurrency: ConcurrencyView {
                    min: q.concurrency.min,
                    max: q.concurrency.max,
                    limit: limit.map_or(0, |c| c.limit),
                    workers: limit.map_or(0, |c| c.workers),
                },
                circuit: circuits
                    .iter()
                    .find(|c| c.queue == q.name)
                    .map_or("closed", |c| c.state.as_str()),
            }
        })
        .collect();
    Ok(Json(QueuesView { queues }))
}

/// `POST /admin/v1/queues/{queue}/pause`: `200 {"queue", "paused": true}`.
pub(crate) async fn pause(
    state: State<AdminState>,
    actor: Actor,
    queue: QueueParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_paused(state, actor, queue, true).await
}

/// `POST /admin/v1/queues/{queue}/resume`: `200 {"queue", "paused": false}`.
pub(crate) async fn resume(
    state: State<AdminState>,
    actor: Actor,
    queue: QueueParam,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_paused(state, actor, queue, false).await
}

async fn set_paused(
    State(state): State<AdminState>,
    Actor(actor): Actor,
    QueueParam(queue): QueueParam,
    paused: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.queue(&queue).is_none() {
        return Err(ApiError::UnknownQueue(queue));
    }
    state.store().set_paused(&queue, paused).await?;
    let action = if paused { "pause" } else { "resume" };
    state
        .audit(&actor, action, queue.clone(), 1, json!({ "queue": queue }))
        .await;
    Ok(Json(json!({ "queue": queue, "paused": paused })))
}
