//! Autoscaling signals for an outside scaler (KEDA's metrics-api scaler, an
//! HPA on external metrics): per configured queue, the store's figures
//! ([`QueueScaling`]) and the broker's consumer lag, served as JSON by
//! `GET /v1/queues/{queue}/scaling` and as `sluice_queue_*` gauges.
//!
//! [`Scaling::run`] refreshes them periodically; a request reuses figures
//! younger than [`Scaling::fresh_for`], and concurrent requests share one
//! refresh, so a storm of requests costs the store one query.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use sluice_core::{now_ms, EpochMs};
use sluice_store::{QueueScaling, Store, StoreError};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::extract::QueueParam;
use crate::metrics;
use crate::state::IngestState;
use crate::ApiError;

/// Default of [`Scaling::fresh_for`].
pub const DEFAULT_FRESH_FOR: Duration = Duration::from_secs(1);

/// The consumer lag of a queue's workers, from the broker (the binary
/// adapts its broker; this crate does not know brokers).
#[async_trait]
pub trait ConsumerLag: Send + Sync {
    /// Messages of `queue`'s topic its workers have yet to consume; `None`
    /// when the broker has no such figure or cannot give it now.
    async fn consumer_lag(&self, queue: &str) -> Option<u64>;
}

/// The body of `GET /v1/queues/{queue}/scaling`: flat numbers, so a scaler
/// can pick one by name. Counts are jobs; ages are seconds (0 when nothing
/// waits).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingFigures {
    pub queue: String,
    /// Jobs a worker could start now: published and not running, plus
    /// pending and retrying jobs whose time has come. The figure to scale
    /// workers by.
    pub backlog: u64,
    /// Accepted, not yet on the broker (delayed jobs included).
    pub pending: u64,
    /// On the broker (or back there after a worker's lease ran out), not
    /// running.
    pub published: u64,
    /// Attempts running under an unexpired lease.
    pub in_flight: u64,
    /// Waiting for their backoff to pass (or for the relay) before another
    /// attempt.
    pub retrying: u64,
    /// Dead letters.
    pub dead: u64,
    /// How long the longest-waiting job of the backlog has waited.
    pub oldest_pending_age_seconds: f64,
    /// Age of the queue's oldest due outbox row: how far the relay is behind.
    pub relay_lag_seconds: f64,
    /// Messages the workers' consumer group has yet to consume (Kafka:
    /// uncommitted offsets; RabbitMQ: ready messages); `null` when unknown.
    pub consumer_lag: Option<u64>,
}

impl ScalingFigures {
    fn new(s: QueueScaling, now: EpochMs, consumer_lag: Option<u64>) -> Self {
        let age = |since: Option<EpochMs>| since.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        Self {
            backlog: s.backlog,
            pending: s.pending,
            published: s.published,
            in_flight: s.in_flight,
            retrying: s.retrying,
            dead: s.dead,
            oldest_pending_age_seconds: age(s.oldest_backlog_since),
            relay_lag_seconds: age(s.oldest_outbox_due),
            consumer_lag,
            queue: s.queue,
        }
    }
}

/// Figures of every configured queue, refreshed on demand or periodically.
pub struct Scaling {
    store: Arc<dyn Store>,
    queues: Vec<String>,
    lag: Option<Arc<dyn ConsumerLag>>,
    fresh_for: Duration,
    last: Mutex<Option<(Instant, Arc<Vec<ScalingFigures>>)>>,
}

impl std::fmt::Debug for Scaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaling")
            .field("queues", &self.queues)
            .field("fresh_for", &self.fresh_for)
            .finish_non_exhaustive()
    }
}

impl Scaling {
    /// Figures of `queues` (the configured ones: they label the gauges)
    /// from `store`, with consumer lag from `lag` when given.
    pub fn new(
        store: Arc<dyn Store>,
        queues: Vec<String>,
        lag: Option<Arc<dyn ConsumerLag>>,
    ) -> Self {
        Self {
            store,
            queues,
            lag,
            fresh_for: DEFAULT_FRESH_FOR,
            last: Mutex::new(None),
        }
    }

    /// How old figures a request may be answered with.
    pub fn fresh_for(mut self, age: Duration) -> Self {
        self.fresh_for = age;
        self
    }

    /// Figures no older than `fresh_for`; callers arriving during a refresh
    /// wait for it instead of starting their own.
    pub async fn current(&self) -> Result<Arc<Vec<ScalingFigures>>, StoreError> {
        let mut last = self.last.lock().await;
        if let Some((at, figures)) = &*last {
            if at.elapsed() < self.fresh_for {
                return Ok(figures.clone());
            }
        }
        let figures = Arc::new(self.read().await?);
        *last = Some((Instant::now(), figures.clone()));
        Ok(figures)
    }

    /// Reads the figures now, sets the gauges and keeps them for requests.
    pub async fn refresh(&self) -> Result<Arc<Vec<ScalingFigures>>, StoreError> {
        let mut last = self.last.lock().await;
        let figures = Arc::new(self.read().await?);
        *last = Some((Instant::now(), figures.clone()));
        Ok(figures)
    }

    /// Refreshes every `interval` until `stop` resolves; failures are logged
    /// (the gauges keep their last values).
    pub async fn run(self: Arc<Self>, interval: Duration, stop: impl std::future::Future) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot refresh autoscaling figures");
            }
        }
    }

    async fn read(&self) -> Result<Vec<ScalingFigures>, StoreError> {
        let now = now_ms();
        let stats = self.store.queue_scaling(&self.queues, now).await?;
        let mut out = Vec::with_capacity(stats.len());
        for s in stats {
            let lag = match &self.lag {
                Some(lag) => lag.consumer_lag(&s.queue).await,
                None => None,
            };
            let figures = ScalingFigures::new(s, now, lag);
            metrics::queue_scaling(&figures);
            out.push(figures);
        }
        Ok(out)
    }
}

/// `GET /v1/queues/{queue}/scaling`: `200` with the queue's figures, `404`
/// for a queue not configured, `503` when the store cannot answer.
pub(crate) async fn get_scaling(
    State(state): State<IngestState>,
    QueueParam(queue): QueueParam,
) -> Result<Json<ScalingFigures>, ApiError> {
    state.queue(&queue)?;
    let Some(scaling) = &state.scaling else {
        tracing::warn!("autoscaling figures requested but not wired");
        return Err(ApiError::Unavailable);
    };
    let figures = scaling.current().await?;
    figures
        .iter()
        .find(|f| f.queue == queue)
        .cloned()
        .map(Json)
        // Configured for ingest but not for the figures: wiring differs.
        .ok_or(ApiError::UnknownQueue(queue))
}
