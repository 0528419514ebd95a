//! The operators' admin API (`/admin/v1/...`, served on its own listener):
//! queue stats, pause and resume, dead letters, replays and the audit log.
//! Every request needs the admin bearer token (see [`auth`]); every pause,
//! resume, replay and delete is written to the audit log.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sluice_core::QueueConfig;
use sluice_store::{AuditEntry, Store};
use tokio::sync::Notify;

mod audit;
mod auth;
mod bulk;
mod dead_letters;
mod params;
mod queues;
mod replays;
mod routes;
mod runner;

pub use auth::{sanitize_actor, ACTOR_HEADER, DEFAULT_ACTOR, MAX_ACTOR_LEN};
pub use routes::{admin_app, admin_app_with_health, admin_routes};

/// Default page size of `GET /admin/v1/dead-letters`.
pub const DEFAULT_LIST_LIMIT: usize = 50;
/// Largest admin request body: a bulk replay may list 100 000 ids.
pub const MAX_ADMIN_BODY_BYTES: usize = 8 << 20;
/// Largest page of `GET /admin/v1/dead-letters` and `GET /admin/v1/audit`.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Most dead letters one bulk replay may match (`limit`, `ids`).
pub const MAX_REPLAY_LIMIT: usize = 100_000;
/// Highest `rate_per_second` of a bulk replay.
pub const MAX_REPLAY_RATE: f64 = 10_000.0;
/// Dead letters shown in a dry run's `sample`.
pub const DRY_RUN_SAMPLE: usize = 10;
/// Default `admin.max_replays`: how often one job may be replayed.
pub const DEFAULT_MAX_REPLAYS: u32 = 3;
/// Longest accepted `error_contains` filter, in bytes.
pub const MAX_ERROR_FILTER_LEN: usize = 1024;

/// Shared state of the admin router; cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub queues: Vec<QueueConfig>,
    /// SHA-256 of the token: compared in constant time, never logged.
    pub token_hash: [u8; 32],
    pub max_replays: u32,
    /// Replays this process is running, so a stale one is resumed once.
    pub running: Mutex<HashSet<uuid::Uuid>>,
    /// Set by [`AdminState::stop_replays`]; runners stop at the next job.
    pub stopping: AtomicBool,
    pub stop: Notify,
    /// A `running` replay without progress for this long (ms) is resumed.
    pub stale_after_ms: AtomicU64,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field(
                "queues",
                &self
                    .inner
                    .queues
                    .iter()
                    .map(|q| &q.name)
                    .collect::<Vec<_>>(),
            )
            .field("max_replays", &self.inner.max_replays)
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// The admin state over `store` for the configured `queues`; requests
    /// must carry `token`; a job is replayed at most `max_replays` times.
    pub fn new(
        store: Arc<dyn Store>,
        queues: Vec<QueueConfig>,
        token: &str,
        max_replays: u32,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                queues,
                token_hash: Sha256::digest(token.as_bytes()).into(),
                max_replays,
                running: Mutex::new(HashSet::new()),
                stopping: AtomicBool::new(false),
                stop: Notify::new(),
                stale_after_ms: AtomicU64::new(runner::STALE_AFTER.as_millis() as u64),
            }),
        }
    }

    /// How long a `running` replay may go without recorded progress before
    /// it counts as abandoned (default 30 s; runners record progress at
    /// least every 5 s).
    pub fn set_replay_stale_after(&self, after: Duration) {
        let ms = after.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.inner.stale_after_ms.store(ms, Ordering::SeqCst);
    }

    pub(crate) fn stale_after(&self) -> Duration {
        Duration::from_millis(self.inner.stale_after_ms.load(Ordering::SeqCst))
    }

    /// Resumes replays whose runner died (no progress for the stale time)
    /// now, and keeps checking every half of it in the background until
    /// `shutdown` resolves. Call once per process after start.
    pub fn spawn_replay_supervisor(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(runner::supervise(self.clone(), shutdown))
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub(crate) fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.inner.queues.iter().find(|q| q.name == name)
    }

    /// Writes an audit entry; a failure is logged, not returned: the action
    /// itself already happened.
    pub(crate) async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: String,
        count: u64,
        detail: serde_json::Value,
    ) {
        let entry = AuditEntry {
            at: sluice_core::now_ms(),
            actor: actor.to_string(),
            action: action.to_string(),
            target,
            count,
            detail,
        };
        tracing::info!(actor, action, target = %entry.target, count, "admin action");
        if let Err(e) = self.store().record_audit(entry).await {
            tracing::error!(error = %e, action, "cannot write the audit log");
        }
    }
}
