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
//!   order are all published.
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
mod ingest;
mod outbox;
mod replay;
mod retention;
mod rows;
mod scaling;
mod start;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::now_ms;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::Row;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

use crate::{QueueScaling, QueueStats, Store, StoreError};

/// The channel relays listen on.
pub const NOTIFY_CHANNEL: &str = "sluice_outbox";
/// Connections of the pool unless the URL says `max_connections=`.
const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a connection (and so for a down
/// database) before failing, unless the URL says `acquire_timeout_ms=`.
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one operation (all its retries) may take, unless the URL says
/// `op_timeout_ms=`: a lost TCP peer must not hang a caller forever.
const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(30);
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
/// Reconnect backoff of the `LISTEN` task.
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

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
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// The background `LISTEN` task; aborted on drop.
struct ListenerTask {
    handle: AbortHandle,
    pool: PgPool,
    listening: watch::Receiver<bool>,
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A parsed store URL.
struct Config {
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
    op_timeout: Duration,
    /// To scrub from error messages.
    password: Option<String>,
}

/// Removes `password` from `msg`.
fn redact(msg: String, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() && msg.contains(p) => msg.replace(p, "***"),
        _ => msg,
    }
}

fn redact_err(e: StoreError, password: Option<&str>) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(redact(m, password)),
        StoreError::InvalidUrl(m) => StoreError::InvalidUrl(redact(m, password)),
        StoreError::Migration(m) => StoreError::Migration(redact(m, password)),
        StoreError::Corrupt(m) => StoreError::Corrupt(redact(m, password)),
        other => other,
    }
}

/// Decodes `%XX` escapes (as in the userinfo of a URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_ms(key: &str, value: &str) -> Result<Duration, StoreError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| StoreError::InvalidUrl(format!("{key} must be a positive integer")))
}

/// How long a session may sit idle inside a transaction before the server
/// ends it. sluice's transactions run their statements back to back, so a
/// session idle that long belongs to a process that is frozen (SIGSTOP, a VM
/// pause) or starved; ending it frees the rows it locked, so other workers
/// can take its jobs over once their leases lapse, instead of waiting for the
/// process to wake up. Its own operation fails and is retried.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "5s";

fn parse_url(url: &str) -> Result<Config, StoreError> {
    // Parse errors of the url crate never quote the input.
    let mut parsed = url::Url::parse(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(StoreError::InvalidUrl(
            "expected postgres:// or postgresql://".into(),
        ));
    }
    // the password given in the user info, or else as a query parameter
    // (as libpq and sqlx take it), hidden from every error alike
    let password = parsed.password().map(percent_decode).or_else(|| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.into_owned())
    });
    let mut max_connections = DEFAULT_MAX_CONNECTIONS;
    let mut acquire_timeout = DEFAULT_ACQUIRE_TIMEOUT;
    let mut op_timeout = DEFAULT_OP_TIMEOUT;
    let mut rest: Vec<(String, String)> = Vec::new();
    for (k, v) in parsed.query_pairs() {
        match &*k {
            "max_connections" => {
                max_connections = v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    StoreError::InvalidUrl("max_connections must be a positive integer".into())
                })?;
            }
            "acquire_timeout_ms" => acquire_timeout = parse_ms(&k, &v)?,
            "op_timeout_ms" => op_timeout = parse_ms(&k, &v)?,
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let mut connect = PgConnectOptions::from_str(parsed.as_str())
        .map_err(|e| StoreError::InvalidUrl(redact(e.to_string(), password.as_deref())))?
        // Appended last, so they win over any `options=` of the URL.
        .options([
            ("synchronous_commit", "on"),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            ),
        ]);
    if connect.get_application_name().is_none() {
        connect = connect.application_name("sluice");
    }
    Ok(Config {
        connect,
        max_connections,
        acquire_timeout,
        op_timeout,
        password,
    })
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
        match tokio::time::timeout(self.op_timeout, attempts).await {
            Ok(res) => res,
            Err(_) => Err(StoreError::Unavailable(format!(
                "{what} did not finish within {} ms",
                self.op_timeout.as_millis()
            ))),
        }
    }
}

/// A server setting that works against sluice's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerWarning {
    /// The setting's name, as `SHOW` takes it.
    pub setting: &'static str,
    /// What goes wrong, and what to do.
    pub message: &'static str,
}

/// Settings of the server behind `pool` that work against sluice (logged
/// by [`PgStore::open`]); see [`warnings_for`]. A failed check reports
/// nothing.
async fn server_warnings(pool: &PgPool) -> Vec<ServerWarning> {
    let autovacuum: Option<String> = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await
        .ok();
    warnings_for(autovacuum.as_deref())
}

/// The warnings for a server whose `autovacuum` setting reads `autovacuum`
/// (`None`: unknown). With autovacuum off, the rows relays delete from the
/// outbox are never vacuumed, and claims read past ever more dead index
/// entries.
fn warnings_for(autovacuum: Option<&str>) -> Vec<ServerWarning> {
    match autovacuum {
        Some("off") => vec![ServerWarning {
            setting: "autovacuum",
            message: "autovacuum is off on this postgres server: the outbox's deleted rows \
                      pile up and relay claims slow down; turn it on, or VACUUM outbox often",
        }],
        _ => Vec::new(),
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

fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}

/// `d` scaled by a random factor in [0.5, 1.5).
fn jittered(d: Duration) -> Duration {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    d * (500 + r) / 1000
}

/// The `LISTEN` loop: each notification (and each reconnection, after which
/// notifications may have been missed) wakes the relays of this process.
async fn listen(pool: PgPool, notify: Weak<Notify>, listening: watch::Sender<bool>) {
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        match subscribe(&pool).await {
            Ok(mut listener) => {
                listening.send_replace(true);
                backoff = LISTEN_BACKOFF_MIN;
                loop {
                    let Some(notify) = notify.upgrade() else {
                        return;
                    };
                    match listener.try_recv().await {
                        Ok(Some(_)) => wake(&notify),
                        // The connection was lost and re-established:
                        // whatever was sent meanwhile is lost, so look.
                        Ok(None) => {
                            tracing::debug!("postgres LISTEN connection re-established");
                            wake(&notify);
                        }
                        Err(e) => {
                            tracing::warn!(error = %map_err(e), "postgres LISTEN connection lost; reconnecting");
                            listening.send_replace(false);
                            wake(&notify);
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                listening.send_replace(false);
                tracing::debug!(error = %e, "postgres LISTEN failed; retrying");
            }
        }
        if notify.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(jittered(backoff)).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(map_err)?;
    listener.listen(NOTIFY_CHANNEL).await.map_err(map_err)?;
    Ok(listener)
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

/// Why a transaction body failed: a driver error (classified, and retried
/// when it is a conflict) or an already classified one.
pub(crate) enum Fail {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Serialization failure or deadlock: the transaction may simply be rerun.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40001" | "40P01"))
}

/// The database cannot be reached (or the connection is gone), as opposed
/// to a statement failing on a live connection.
fn is_connection_error(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Io(_) | E::Tls(_) => true,
        E::Database(_) => sqlstate(e).is_some_and(|c| {
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("28") || c == "3D000"
        }),
        _ => false,
    }
}

/// Whether a SQLSTATE means the server cannot serve now (retry later).
fn unavailable_state(code: &str) -> bool {
    matches!(
        code,
        // serialization failure, deadlock (after our own retries)
        "40001" | "40P01"
        // lock not available, query canceled (statement timeout),
        // read-only transaction (a standby after failover)
        | "55P03" | "57014" | "25006"
        // the server ended a session idle in its transaction (this store's
        // own timeout) or one past a transaction timeout: its work was
        // rolled back, and a new connection may run it again
        | "25P03" | "25P04"
    ) || code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57P") // admin or crash shutdown, cannot connect now
        || code.starts_with("28") // authentication failed (credentials rotated)
        || code == "3D000" // the database does not exist (yet, or any more)
        || code.starts_with("58") // system error (I/O on the server)
        || code.starts_with("XX") // internal error
}

/// Classifies a sqlx error: connection, pool, shutdown and conflict trouble
/// is `Unavailable` (retry later); bad data is `Corrupt`. Messages never
/// carry the connection URL.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match e {
        E::RowNotFound => StoreError::NotFound,
        E::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        E::PoolClosed => StoreError::Unavailable("the database pool is closed".into()),
        E::WorkerCrashed => {
            StoreError::Unavailable("the database connection worker stopped".into())
        }
        E::Io(e) => StoreError::Unavailable(format!("database i/o error: {e}")),
        E::Tls(e) => StoreError::Unavailable(format!("database tls error: {e}")),
        E::Protocol(m) => StoreError::Unavailable(format!("database protocol error: {m}")),
        E::Configuration(e) => StoreError::InvalidUrl(e.to_string()),
        E::Database(d) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            if unavailable_state(&code) {
                StoreError::Unavailable(format!("database unavailable ({code}): {}", d.message()))
            } else {
                StoreError::Corrupt(format!("database error ({code}): {}", d.message()))
            }
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A copy of `e` for each of several results failed by one cause.
pub(crate) fn dup_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::IdempotencyConflict => StoreError::IdempotencyConflict,
        StoreError::LeaseLost => StoreError::LeaseLost,
        StoreError::NotFound => StoreError::NotFound,
        StoreError::InvalidUrl(m) => StoreError::InvalidUrl(m.clone()),
        StoreError::BackendDisabled(b) => StoreError::BackendDisabled(b),
        StoreError::Migration(m) => StoreError::Migration(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
    }
}

/// The results of a batch of `n` items. A batch shares one transaction, so
/// when it fails for a reason other than availability (one item's data broke
/// it, and nothing of it was committed) each item is run again alone by
/// `one(index)`, and only the items at fault fail.
pub(crate) async fn split_on_failure<O, F, Fut>(
    first: Result<Vec<Result<O, StoreError>>, StoreError>,
    n: usize,
    mut one: F,
) -> Vec<Result<O, StoreError>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>>,
{
    match first {
        Ok(results) => results,
        Err(e) if n > 1 && !e.is_transient() => {
            tracing::warn!(error = %e, items = n, "a postgres batch failed; running its items one by one");
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match one(i).await {
                    Ok(mut r) if r.len() == 1 => r.pop().expect("one result"),
                    Ok(_) => Err(StoreError::Corrupt("expected one result".into())),
                    Err(e) => Err(e),
                });
            }
            out
        }
        Err(e) => (0..n).map(|_| Err(dup_err(&e))).collect(),
    }
}

/// Milliseconds of a lease, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_driver_params_and_take_sluice_ones() {
        let cfg = parse_url(
            "postgres://u:s3cr%40t@db.example:6543/app?max_connections=3&sslmode=disable&acquire_timeout_ms=250&op_timeout_ms=900",
        )
        .unwrap();
        assert_eq!(cfg.max_connections, 3);
        assert_eq!(cfg.acquire_timeout, Duration::from_millis(250));
        assert_eq!(cfg.op_timeout, Duration::from_millis(900));
        assert_eq!(cfg.password.as_deref(), Some("s3cr@t"));
        assert_eq!(cfg.connect.get_host(), "db.example");
        assert_eq!(cfg.connect.get_port(), 6543);
        assert_eq!(cfg.connect.get_database(), Some("app"));
        assert_eq!(cfg.connect.get_application_name(), Some("sluice"));

        let cfg = parse_url("postgresql://u@h/d").unwrap();
        assert_eq!(cfg.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(cfg.acquire_timeout, DEFAULT_ACQUIRE_TIMEOUT);
        assert_eq!(cfg.password, None);
        let cfg = parse_url("postgres://u@h/d?application_name=relay-1").unwrap();
        assert_eq!(cfg.connect.get_application_name(), Some("relay-1"));

        for bad in [
            "postgres://u@h/d?max_connections=0",
            "postgres://u@h/d?max_connections=x",
            "postgres://u@h/d?acquire_timeout_ms=-1",
            "mysql://u@h/d",
            "not a url",
        ] {
            assert!(
                matches!(parse_url(bad), Err(StoreError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("bad s3cr3t here".into(), Some("s3cr3t")),
            "bad *** here"
        );
        assert_eq!(redact("x".into(), Some("")), "x");
        let e = redact_err(
            StoreError::Unavailable("pw hunter2".into()),
            Some("hunter2"),
        );
        assert_eq!(e.to_string(), "store unavailable: pw ***");
        let cfg = parse_url("postgres://u@h/d?password=hunter%232").unwrap();
        assert_eq!(cfg.password.as_deref(), Some("hunter#2"));
    }

    #[test]
    fn sqlstates_are_classified() {
        for code in [
            "08006", "57P01", "53300", "40001", "40P01", "55P03", "25006", "28P01", "3D000",
            "25P03", "25P04",
        ] {
            assert!(unavailable_state(code), "{code}");
        }
        for code in ["23505", "22P02", "42P01"] {
            assert!(!unavailable_state(code), "{code}");
        }
    }

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

    /// A session the server ended for idling in its transaction is a
    /// transient failure (the work is rolled back and may run again on a
    /// new connection), not bad data: a worker frozen past this store's
    /// idle-in-transaction timeout retries its outcomes, which its lease
    /// then fences.
    #[tokio::test]
    async fn a_session_ended_idle_in_its_transaction_is_transient() {
        let url = match std::env::var("SLUICE_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                assert_ne!(
                    std::env::var("SLUICE_TEST_REQUIRE_BACKENDS").as_deref(),
                    Ok("1"),
                    "SLUICE_TEST_POSTGRES_URL is not set: PostgreSQL is required"
                );
                return;
            }
        };
        use sqlx::Connection;
        let mut conn =
            tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(&url))
                .await
                .expect("connects in time")
                .expect("connects");
        sqlx::query("SET idle_in_transaction_session_timeout = '100ms'")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let e = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::query("SELECT 1").execute(&mut conn),
        )
        .await
        .expect("answers in time")
        .expect_err("the server ended the session");
        let mapped = map_err(e);
        assert!(mapped.is_transient(), "{mapped:?}");
    }

    #[test]
    fn autovacuum_off_and_only_off_is_warned_about() {
        let settings = |a| -> Vec<&str> { warnings_for(a).iter().map(|w| w.setting).collect() };
        assert_eq!(settings(Some("off")), vec!["autovacuum"]);
        assert!(settings(Some("on")).is_empty());
        assert!(
            settings(None).is_empty(),
            "an unknown setting is no warning"
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(50) && d < Duration::from_millis(150));
        }
    }
}
