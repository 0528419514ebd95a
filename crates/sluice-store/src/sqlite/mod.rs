//! SQLite backend.
//!
//! Every connection runs in WAL mode with `synchronous=FULL`, a busy timeout
//! and foreign keys on. Writes go through one connection per process and
//! start with `BEGIN IMMEDIATE`, so writers in other processes sharing the
//! file are serialized by SQLite's own locking (waiting up to the busy
//! timeout) and no write transaction ever works on a stale snapshot. Reads use
//! a small separate pool.

mod admin;
mod attempts;
mod circuit;
mod concurrency;
mod ingest;
mod outbox;
mod retention;
mod rows;
mod scaling;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::Notify;

use crate::{QueueScaling, QueueStats, Store, StoreError};

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation waits for a pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections of the read pool (file databases).
const READERS: u32 = 4;

/// A [`Store`] on one SQLite database file (or an in-memory database).
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Whether `reader` and `writer` are one single-connection pool.
    memory: bool,
    notify: Arc<Notify>,
}

/// The settings one pooled connection runs with (see [`SqliteStore::pragmas`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `wal` for file databases (`memory` for in-memory ones).
    pub journal_mode: String,
    /// 2 is `FULL`.
    pub synchronous: i64,
    pub busy_timeout_ms: i64,
    pub foreign_keys: bool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Opens the one-connection writer pool. The first connections to a new
/// file race to switch it to WAL mode, and SQLite answers the loser
/// "database is locked" at once instead of waiting out the busy timeout, so
/// that answer is retried for a while.
async fn connect_writer(opts: SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let mut tries = 0u32;
    loop {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts.clone())
            .await;
        match pool {
            Ok(p) => return Ok(p),
            // BUSY or LOCKED
            Err(e) if tries < 20 && matches!(primary_code(&e), Some(5 | 6)) => {
                tries += 1;
                tracing::debug!(error = %e, "sqlite file locked while opening, retrying");
                tokio::time::sleep(Duration::from_millis(25 * u64::from(tries))).await;
            }
            Err(e) => return Err(map_err(e)),
        }
    }
}

/// Where a `sqlite:` URL points.
enum Target {
    Memory,
    File(PathBuf),
}

fn parse_url(url: &str) -> Result<Target, StoreError> {
    if url == "sqlite::memory:" || url.starts_with("sqlite::memory:?") {
        return Ok(Target::Memory);
    }
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::InvalidUrl("expected sqlite://path or sqlite::memory:".into())
        })?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() {
        return Err(StoreError::InvalidUrl("sqlite url names no file".into()));
    }
    Ok(Target::File(PathBuf::from(path)))
}

impl SqliteStore {
    /// Opens (creating the file and its parent directories when needed) and
    /// migrates the database named by `url`: `sqlite://path/to/file.db`
    /// (relative to the working directory, or absolute as `sqlite:///abs.db`)
    /// or `sqlite::memory:` (a private database living as long as the store).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let base = SqliteConnectOptions::new()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let store = match parse_url(url)? {
            Target::Memory => {
                // One connection that never closes: the database lives in it.
                let opts = SqliteConnectOptions::from_str("sqlite::memory:")
                    .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(opts)
                    .await
                    .map_err(map_err)?;
                Self {
                    writer: pool.clone(),
                    reader: pool,
                    memory: true,
                    notify: Arc::new(Notify::new()),
                }
            }
            Target::File(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!(
                            "cannot create directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
                let opts = base.filename(&path);
                let writer = connect_writer(opts.clone().create_if_missing(true)).await?;
                let reader = SqlitePoolOptions::new()
                    .max_connections(READERS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_lazy_with(opts);
                Self {
                    writer,
                    reader,
                    memory: false,
                    notify: Arc::new(Notify::new()),
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations. Processes opening a new file at the same
    /// time may race; the loser retries and finds the migrations applied.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = sqlx::migrate!("src/sqlite/migrations");
        let mut tries = 0;
        loop {
            match migrator.run(&self.writer).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 10 => {
                    tries += 1;
                    tracing::debug!(error = %e, "sqlite migration failed, retrying");
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Err(e) => return Err(StoreError::Migration(e.to_string())),
            }
        }
    }

    /// Closes every connection; later operations fail with `Unavailable`.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// The settings of every pooled connection: the writer's first, then
    /// each reader's (all readers are opened and held at once to see each).
    pub async fn pragmas(&self) -> Result<Vec<Pragmas>, StoreError> {
        let mut conns = vec![self.writer.acquire().await.map_err(map_err)?];
        if !self.memory {
            for _ in 0..READERS {
                conns.push(self.reader.acquire().await.map_err(map_err)?);
            }
        }
        let mut out = Vec::with_capacity(conns.len());
        for conn in &mut conns {
            let one = |sql: &'static str| sqlx::query_scalar::<_, String>(sql);
            let journal_mode = one("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .map_err(map_err)?;
            let int = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
            let synchronous = int("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .map_err(map_err)?;
            let busy_timeout_ms = int("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .map_err(map_err)?;
            let foreign_keys = int("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .map_err(map_err)?
                == 1;
            out.push(Pragmas {
                journal_mode,
                synchronous,
                busy_timeout_ms,
                foreign_keys,
            });
        }
        Ok(out)
    }

    /// Starts a write transaction holding SQLite's write lock from its first
    /// statement. Dropping it uncommitted rolls it back.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// Wakes relays waiting for new outbox rows.
    fn wake_relays(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(include_str!("sql/queue_stats.sql"))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
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
        "sqlite"
    }
}

/// SQLite's primary result code, when `e` is a database error.
fn primary_code(e: &sqlx::Error) -> Option<i32> {
    let code = e.as_database_error()?.code()?.parse::<i32>().ok()?;
    Some(code & 0xff)
}

/// Classifies a sqlx error: connection, lock and I/O trouble is
/// `Unavailable` (retry later); bad data is `Corrupt`.
/// Deletes the jobs `ids` (a JSON array) with their outbox rows and history,
/// in `tx`; returns how many jobs. Their dead-letter entries must be gone.
pub(crate) async fn delete_jobs(
    tx: &mut Transaction<'static, Sqlite>,
    ids: &str,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    // outbox rows and history before the jobs they name
    for sql in [
        include_str!("sql/outbox_delete_jobs.sql"),
        include_str!("sql/attempts_delete_jobs.sql"),
        include_str!("sql/jobs_delete.sql"),
    ] {
        deleted = sqlx::query(sql)
            .bind(ids)
            .execute(&mut **tx)
            .await
            .map_err(map_err)?
            .rows_affected();
    }
    Ok(deleted)
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    let code = primary_code(&e).unwrap_or(0);
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
        E::Database(d) => {
            // Primary result codes: BUSY, LOCKED, NOMEM, READONLY, IOERR,
            // FULL, CANTOPEN, PROTOCOL.
            match code {
                5 | 6 | 7 | 8 | 10 | 13 | 14 | 15 => {
                    StoreError::Unavailable(format!("database unavailable: {}", d.message()))
                }
                _ => StoreError::Corrupt(format!("database error: {}", d.message())),
            }
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
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
    fn urls() {
        assert!(matches!(parse_url("sqlite::memory:"), Ok(Target::Memory)));
        match parse_url("sqlite://./data/s.db").unwrap() {
            Target::File(p) => assert_eq!(p, PathBuf::from("./data/s.db")),
            Target::Memory => panic!("not memory"),
        }
        match parse_url("sqlite:///abs/s.db?mode=rwc").unwrap() {
            Target::File(p) => assert_eq!(p, PathBuf::from("/abs/s.db")),
            Target::Memory => panic!("not memory"),
        }
        assert!(matches!(
            parse_url("sqlite://"),
            Err(StoreError::InvalidUrl(_))
        ));
        assert!(matches!(
            parse_url("postgres://x"),
            Err(StoreError::InvalidUrl(_))
        ));
    }
}
