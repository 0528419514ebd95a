//! PostgreSQL backend: the production outbox.
//!
//! - Every connection runs with `synchronous_commit = on` (set in the
//!   startup packet, whatever the server default), so a commit that returned
//!   is durable before any `202` goes out.
//! - Ingest is group-committed: one [`IngestStore::enqueue`] call (many HTTP
//!   requests gathered by [`crate::GroupCommit`]) is one transaction with
//!   multi-row `UNNEST` inserts; a request that breaks the shared transaction
//!   is retried alone, so it fails alone.
//! - Relays claim with `FOR UPDATE SKIP LOCKED` under a lease token that fences
//!   every later change; there is no high-water mark, so rows committed out of
//!   order are all published. A claim is first held in an open transaction
//!   that locked its rows, so that marking them is a delete and its commit
//!   (see [`held`]).
//! - Every committed transaction that added outbox rows sends one
//!   `NOTIFY sluice_outbox` (never one per row); a background `LISTEN` task
//!   turns them into wake-ups of [`Store::outbox_notify`], so relays in any
//!   process wake. While it is disconnected, relays' polling covers.
//! - Connection trouble is [`StoreError::Unavailable`] within the acquire
//!   timeout (never a hang); the pool reconnects on its own with backoff.
//!   Serialization failures and deadlocks are retried a few times first.
//!
//! URL: `postgres://user:password@host:port/db?max_connections=16&acquire_timeout_ms=5000&op_timeout_ms=30000`
//! (the three parameters are sluice's own and are not passed to the driver;
//! every other parameter is libpq-style and goes to sqlx).

mod admin;
mod attempts;
mod circuit;
mod concurrency;
mod config;
mod errors;
mod held;
mod ingest;
mod listen;
mod outbox;
mod replay;
mod retention;
mod rows;
mod scaling;
mod start;
mod warnings;

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::now_ms;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::sync::{watch, Notify};

use crate::{QueueScaling, QueueStats, Store, StoreError};

use config::{parse_url, redact_err, Config};
use errors::{is_connection_error, is_retryable};
pub(crate) use errors::{map_err, split_on_failure, Fail};
use listen::{jittered, listen, wake, ListenerTask};
use warnings::server_warnings;
pub use warnings::ServerWarning;

/// The channel relays listen on.
pub const NOTIFY_CHANNEL: &str = "sluice_outbox";
/// After an operation found the database unreachable, others fail at once
/// for this long (then the next one probes again).
const HOLD_DOWN_MS: i64 = 500;
/// A pooled connection idle at least this long is pinged before use (a
/// round trip), so one the server dropped meanwhile (restart, idle timeout)
/// is replaced instead of failing an operation. Busy connections are not
/// pinged (as HikariCP's 500 ms bypass window): a ping before every
/// operation added a round trip to each, and made ingest's flushes about a
/// third slower. A connection used within this window that the server
/// dropped fails one operation as unavailable; no longer than
/// [`HOLD_DOWN_MS`], so after that hold-down every pooled connection is
/// pinged before its next use.
const PING_IDLE_AFTER: Duration = Duration::from_millis(HOLD_DOWN_MS as u64);
/// Serialization failures and deadlocks are retried this many times.
const MAX_RETRIES: u32 = 4;

/// A [`Store`] on one PostgreSQL database. Clones share the pool and the
/// `LISTEN` task, which stops when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    notify: Arc<Notify>,
    op_timeout: Duration,
    /// Epoch ms until which operations fail fast (see [`HOLD_DOWN_MS`]).
    down_until: Arc<AtomicI64>,
    listener: Arc<ListenerTask>,
    /// Relay claims held in open transactions (see [`held`]).
    held: Arc<held::HeldClaims>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database named by `url` (`postgres://` or
    /// `postgresql://`) and applies pending migrations. sqlx's migrator holds
    /// a PostgreSQL advisory lock while it runs, so processes starting at
    /// once apply each migration once. A database that cannot be reached is
    /// [`StoreError::Unavailable`] after the acquire timeout.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let cfg = parse_url(url)?;
        let password = cfg.password.clone();
        Self::open_config(cfg)
            .await
            .map_err(|e| redact_err(e, password.as_deref()))
    }

    async fn open_config(cfg: Config) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .min_connections(0)
            .acquire_timeout(cfg.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(cfg.connect.clone())
            .await
            .map_err(map_err)?;
        migrate(&pool).await?;
        for warning in server_warnings(&pool).await {
            tracing::warn!(setting = warning.setting, "{}", warning.message);
        }

        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(cfg.acquire_timeout)
            .test_before_acquire(true)
            .connect_lazy_with(cfg.connect);
        let notify = Arc::new(Notify::new());
        let (listening_tx, mut listening) = watch::channel(false);
        let handle = tokio::spawn(listen(
            listen_pool.clone(),
            Arc::downgrade(&notify),
            listening_tx,
        ))
        .abort_handle();
        // Wait (bounded) until the listener is subscribed, so a store that
        // returned from `open` hears the commits that follow; when it cannot
        // subscribe yet it keeps trying in the background.
        let subscribed = tokio::time::timeout(cfg.acquire_timeout, listening.wait_for(|l| *l));
        if !matches!(subscribed.await, Ok(Ok(_))) {
            tracing::warn!("postgres LISTEN is not established yet; relays poll meanwhile");
        }
        Ok(Self {
            pool,
            notify,
            op_timeout: cfg.op_timeout,
            down_until: Arc::new(AtomicI64::new(0)),
            listener: Arc::new(ListenerTask {
                handle,
                pool: listen_pool,
                listening,
            }),
            held: held::HeldClaims::new(cfg.max_connections, cfg.op_timeout),
        })
    }

    /// Whether the `LISTEN` connection is currently subscribed.
    pub fn is_listening(&self) -> bool {
        *self.listener.listening.borrow()
    }

    /// The server settings that work against sluice, as logged at start-up.
    pub async fn server_warnings(&self) -> Vec<ServerWarning> {
        server_warnings(&self.pool).await
    }

    /// The value of the server setting `name` on a pooled connection (as
    /// `SHOW` prints it).
    pub async fn setting(&self, name: &str) -> Result<String, StoreError> {
        let pool = &self.pool;
        self.run("show setting", move || async move {
            Ok(
                sqlx::query_scalar::<_, String>("SELECT current_setting($1)")
                    .bind(name)
                    .fetch_one(pool)
                    .await?,
            )
        })
        .await
    }

    /// Stops the `LISTEN` task and closes every connection; later operations
    /// fail with `Unavailable`.
    pub async fn close(&self) {
        self.listener.handle.abort();
        self.listener.pool.close().await;
        self.pool.close().await;
    }

    /// Wakes relays waiting for new outbox rows in this process.
    fn wake_relays(&self) {
        wake(&self.notify);
    }

    /// Runs `op` (one transaction or statement) bounded by the operation
    /// timeout, retrying serialization failures and deadlocks with a short
    /// jittered backoff; errors are classified by [`map_err`].
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, Fail>> + Send,
        T: Send,
    {
        // Right after the database proved unreachable, answer at once
        // instead of making every caller wait out the acquire timeout (a
        // flood of ingest requests gets its 503s now, not in a minute).
        if now_ms() < self.down_until.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable(
                "the database is unreachable; retrying shortly".into(),
            ));
        }
        let down_until = &self.down_until;
        let attempts = async {
            let mut tries = 0;
            loop {
                match op().await {
                    Ok(v) => return Ok(v),
                    Err(Fail::Db(e)) if is_retryable(&e) && tries < MAX_RETRIES => {
                        tries += 1;
                        tracing::debug!(error = %e, what, tries, "postgres transaction conflict, retrying");
                        tokio::time::sleep(jittered(Duration::from_millis(5 << tries))).await;
                    }
                    Err(Fail::Db(e)) => {
                        if is_connection_error(&e) {
                            down_until.store(now_ms() + HOLD_DOWN_MS, Ordering::Relaxed);
                        }
                        return Err(map_err(e));
                    }
                    Err(Fail::Store(e)) => return Err(e),
                }
            }
        };
        within(self.op_timeout, what, attempts).await
    }
}

/// `op` bounded by `limit`: running out is [`StoreError::Unavailable`]
/// naming `what`.
pub(super) async fn within<T>(
    limit: Duration,
    what: &str,
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, op).await {
        Ok(res) => res,
        Err(_) => Err(StoreError::Unavailable(format!(
            "{what} did not finish within {} ms",
            limit.as_millis()
        ))),
    }
}

/// Applies pending migrations under sqlx's advisory lock.
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    use sqlx::migrate::MigrateError;
    sqlx::migrate!("src/postgres/migrations")
        .run(pool)
        .await
        .map_err(|e| match e {
            MigrateError::Execute(e) => match map_err(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(m),
                other => StoreError::Migration(other.to_string()),
            },
            other => StoreError::Migration(other.to_string()),
        })
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let pool = &self.pool;
        self.run("ping", move || async move {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
        .await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let pool = &self.pool;
        let rows = self
            .run("queue stats", move || async move {
                Ok(sqlx::query(include_str!("sql/queue_stats.sql"))
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        let counts = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("queue").map_err(map_err)?,
                    row.try_get("status").map_err(map_err)?,
                    row.try_get("n").map_err(map_err)?,
                    row.try_get("oldest").map_err(map_err)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        crate::fold_queue_stats(counts)
    }

    async fn queue_scaling(
        &self,
        queues: &[String],
        now: sluice_core::EpochMs,
    ) -> Result<Vec<QueueScaling>, StoreError> {
        self.scaling(queues, now).await
    }

    fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}

/// Milliseconds of a lease, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store on a pool that never connects (nothing listens on port 1).
    fn unreachable_store() -> PgStore {
        let cfg = parse_url("postgres://u:pw@127.0.0.1:1/d?acquire_timeout_ms=200").unwrap();
        let pool = PgPoolOptions::new()
            .acquire_timeout(cfg.acquire_timeout)
            .connect_lazy_with(cfg.connect);
        let (_, listening) = watch::channel(false);
        PgStore {
            pool: pool.clone(),
            notify: Arc::new(Notify::new()),
            op_timeout: Duration::from_secs(5),
            down_until: Arc::new(AtomicI64::new(0)),
            listener: Arc::new(ListenerTask {
                handle: tokio::spawn(async {}).abort_handle(),
                pool,
                listening,
            }),
            held: held::HeldClaims::new(4, Duration::from_secs(5)),
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_fast_then_is_probed_again() {
        let store = unreachable_store();
        let started = std::time::Instant::now();
        let first = store.ping().await.unwrap_err();
        assert!(first.is_transient(), "{first:?}");
        assert!(!first.to_string().contains("retrying shortly"), "{first}");
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "waited for the pool"
        );
        // Right after: no wait for the pool, the same answer.
        let held = std::time::Instant::now();
        let second = store.ping().await.unwrap_err();
        assert!(second.to_string().contains("retrying shortly"), "{second}");
        assert!(held.elapsed() < Duration::from_millis(100));
        // After the hold-down the database is tried again.
        tokio::time::sleep(Duration::from_millis(HOLD_DOWN_MS as u64 + 50)).await;
        let third = store.ping().await.unwrap_err();
        assert!(!third.to_string().contains("retrying shortly"), "{third}");
    }
}
