//! What the ingest routes share: the store, the configured queues with their
//! compiled schemas, the body limit, health and the metrics renderer.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::QueueConfig;
use sluice_store::IngestStore;

use crate::health::{Health, RenderMetrics};
use crate::scaling::Scaling;
use crate::validate::PayloadSchema;
use crate::ApiError;

/// Default request body limit (1 MiB), as in the `http.max_body_bytes` key.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A queue jobs may be posted to.
#[derive(Debug, Clone)]
pub struct IngestQueue {
    pub config: QueueConfig,
    /// The queue's JSON Schema for payloads, already loaded from its file.
    pub schema: Option<serde_json::Value>,
}

/// Settings of the ingest routes.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Largest accepted request body; larger ones get `413`.
    pub max_body_bytes: usize,
    pub queues: Vec<IngestQueue>,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            queues: Vec::new(),
        }
    }
}

/// A configured queue with its compiled schema.
pub(crate) struct QueueEntry {
    pub config: QueueConfig,
    pub schema: Option<PayloadSchema>,
}

/// Shared state of the ingest router; cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    pub(crate) inner: Arc<Inner>,
    /// Figures of `GET /v1/queues/{queue}/scaling`; without them the route
    /// answers `503`.
    pub(crate) scaling: Option<Arc<Scaling>>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn IngestStore>,
    pub queues: HashMap<String, QueueEntry>,
    pub max_body_bytes: usize,
    pub health: Arc<Health>,
    pub render_metrics: RenderMetrics,
}

impl std::fmt::Debug for IngestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut queues: Vec<_> = self.inner.queues.keys().collect();
        queues.sort();
        f.debug_struct("IngestState")
            .field("queues", &queues)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl IngestState {
    /// Compiles every queue's schema. Fails with [`ApiError::InvalidSchema`]
    /// naming the queue when a schema is not a valid JSON Schema, or with
    /// [`ApiError::DuplicateQueue`] when two queues share a name.
    pub fn new(
        store: Arc<dyn IngestStore>,
        settings: IngestSettings,
        health: Arc<Health>,
        render_metrics: RenderMetrics,
    ) -> Result<Self, ApiError> {
        let mut queues = HashMap::new();
        for q in settings.queues {
            let name = q.config.name.clone();
            let schema =
                match &q.schema {
                    Some(s) => Some(PayloadSchema::compile(s).map_err(|reason| {
                        ApiError::InvalidSchema {
                            queue: name.clone(),
                            reason,
                        }
                    })?),
                    None => None,
                };
            if queues.contains_key(&name) {
                return Err(ApiError::DuplicateQueue(name));
            }
            queues.insert(
                name,
                QueueEntry {
                    config: q.config,
                    schema,
                },
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                queues,
                max_body_bytes: settings.max_body_bytes,
                health,
                render_metrics,
            }),
            scaling: None,
        })
    }

    /// Serves `GET /v1/queues/{queue}/scaling` from `scaling`.
    pub fn with_scaling(mut self, scaling: Arc<Scaling>) -> Self {
        self.scaling = Some(scaling);
        self
    }

    /// The configured queue named `name`, or [`ApiError::UnknownQueue`].
    pub(crate) fn queue(&self, name: &str) -> Result<&QueueEntry, ApiError> {
        self.inner
            .queues
            .get(name)
            .ok_or_else(|| ApiError::UnknownQueue(name.to_string()))
    }
}
