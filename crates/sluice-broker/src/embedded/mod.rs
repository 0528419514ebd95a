//! The embedded broker: needs nothing installed and is durable in one SQLite
//! file, `<dir>/broker.db` (WAL, `synchronous=FULL`).
//!
//! Several processes of one machine may open the same directory (a relay
//! publishes, workers consume): every state change is a SQLite write
//! transaction, so they coordinate through SQLite's locks. Within a process a
//! publish wakes waiting subscriptions of the topic at once; other processes
//! notice within the poll interval.
//!
//! Model: `messages` holds every published message of every declared topic.
//! Each consumer group of a topic has a `cursor` (messages up to it were
//! handed to the group) and a `deliveries` row per un-acked message, leased
//! to one subscriber until `visible_at` under a random `receipt`. Leasing,
//! acking and releasing match on the receipt, so a holder whose lease expired
//! cannot ack or release the message someone else now holds. Messages every
//! group acked are deleted now and then (see [`EmbeddedBroker::compact`]).

mod config;
mod publisher;
mod subscription;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::now_ms;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Notify;

use crate::{Broker, BrokerError, ConsumerMark, Publisher, SubscribeOptions, Subscription};

pub use config::{EmbeddedConfig, DEFAULT_POLL_INTERVAL, DEFAULT_VISIBILITY_TIMEOUT};
pub use publisher::EmbeddedPublisher;
pub use subscription::EmbeddedSubscription;

/// File name of the database inside the broker directory.
pub const DB_FILE: &str = "broker.db";

static MIGRATOR: Migrator = sqlx::migrate!("src/embedded/migrations");

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: u32 = 8;
/// Least time between two automatic compactions of one broker instance.
const COMPACT_EVERY_MS: i64 = 1_000;
/// Most messages one compaction statement deletes.
const COMPACT_BATCH: i64 = 10_000;

const SQL_PING: &str = include_str!("sql/ping.sql");
const SQL_DECLARE_TOPIC: &str = include_str!("sql/declare_topic.sql");
const SQL_DECLARED_TOPICS: &str = include_str!("sql/declared_topics.sql");
const SQL_ALL_TOPICS: &str = include_str!("sql/all_topics.sql");
const SQL_JOIN_GROUP: &str = include_str!("sql/join_group.sql");
const SQL_COMPACT_TOPIC: &str = include_str!("sql/compact_topic.sql");
const SQL_CONSUMER_LAG: &str = include_str!("sql/consumer_lag.sql");

/// The embedded broker (`embedded://`). Cheap to share: clones of its
/// publisher and subscriptions use one connection pool.
pub struct EmbeddedBroker {
    shared: Arc<Shared>,
}

/// State shared by a broker instance, its publisher and its subscriptions.
pub(crate) struct Shared {
    pub(crate) pool: SqlitePool,
    pub(crate) config: EmbeddedConfig,
    /// Topics known to be declared (topics are never undeclared).
    known_topics: Mutex<HashSet<String>>,
    /// Per-topic wake-up of this process's waiting subscriptions.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// When this instance last compacted each topic (epoch ms).
    last_compaction_ms: Mutex<HashMap<String, i64>>,
}

/// Maps a database error to the broker's "outcome unknown, retry" error.
pub(crate) fn unavailable(e: sqlx::Error) -> BrokerError {
    BrokerError::Unavailable(format!("embedded broker: {e}"))
}

impl EmbeddedBroker {
    /// Opens (creating when absent) the broker named by an `embedded://` URL;
    /// `data_dir` is used when the URL names no directory.
    pub async fn open(url: &str, data_dir: &Path) -> Result<Self, BrokerError> {
        Self::open_with(EmbeddedConfig::parse(url, data_dir)?).await
    }

    /// Opens (creating when absent) the broker described by `config`.
    pub async fn open_with(config: EmbeddedConfig) -> Result<Self, BrokerError> {
        tokio::fs::create_dir_all(&config.dir).await.map_err(|e| {
            BrokerError::Unavailable(format!(
                "cannot create broker directory {}: {e}",
                config.dir.display()
            ))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(config.dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(BUSY_TIMEOUT + Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        migrate(&pool).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                config,
                known_topics: Mutex::new(HashSet::new()),
                wakers: Mutex::new(HashMap::new()),
                last_compaction_ms: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The settings this broker was opened with.
    pub fn config(&self) -> &EmbeddedConfig {
        &self.shared.config
    }

    /// Deletes the messages of every topic that all its groups acked; returns
    /// how many. Also runs by itself after acks, at most once a second.
    pub async fn compact(&self) -> Result<u64, BrokerError> {
        let topics: Vec<String> = sqlx::query_scalar(SQL_ALL_TOPICS)
            .fetch_all(&self.shared.pool)
            .await
            .map_err(unavailable)?;
        let mut deleted = 0;
        for topic in topics {
            deleted += self.shared.compact_topic(&topic).await?;
        }
        Ok(deleted)
    }

    /// Closes the connection pool; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.shared.pool.close().await;
    }
}

/// Applies the migrations. Two processes migrating a fresh file at once may
/// collide on the bookkeeping table; the schema is idempotent, so retry.
async fn migrate(pool: &SqlitePool) -> Result<(), BrokerError> {
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "embedded broker migration collided, retrying");
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => {
                return Err(BrokerError::Unavailable(format!(
                    "embedded broker: migrating the database failed: {e}"
                )))
            }
        }
    }
}

impl Shared {
    /// The wake-up of `topic`'s waiting subscriptions in this process.
    pub(crate) fn waker(&self, topic: &str) -> Arc<Notify> {
        let mut wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.entry(topic.to_string()).or_default().clone()
    }

    /// Wakes this process's subscriptions waiting on `topic`.
    pub(crate) fn wake(&self, topic: &str) {
        let wakers = self.wakers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = wakers.get(topic) {
            n.notify_waiters();
        }
    }

    /// Which of `topics` are not declared.
    pub(crate) async fn undeclared<'a>(
        &self,
        topics: &BTreeSet<&'a str>,
    ) -> Result<BTreeSet<&'a str>, BrokerError> {
        let mut missing: BTreeSet<&str> = {
            let known = self.known_topics.lock().unwrap_or_else(|p| p.into_inner());
            topics
                .iter()
                .copied()
                .filter(|t| !known.contains(*t))
                .collect()
        };
        if missing.is_empty() {
            return Ok(missing);
        }
        let names = serde_json::to_string(&missing).unwrap_or_else(|_| "[]".into());
        let found: Vec<String> = sqlx::query_scalar(SQL_DECLARED_TOPICS)
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut known = self.known_topics.lock().unwrap_or_else(|p| p.into_inner());
        for name in found {
            missing.remove(name.as_str());
            known.insert(name);
        }
        Ok(missing)
    }

    /// Deletes the messages of `topic` every group acked; returns how many.
    pub(crate) async fn compact_topic(&self, topic: &str) -> Result<u64, BrokerError> {
        self.last_compaction_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), now_ms());
        let mut deleted = 0;
        loop {
            let done = sqlx::query(SQL_COMPACT_TOPIC)
                .bind(topic)
                .bind(COMPACT_BATCH)
                .execute(&self.pool)
                .await
                .map_err(unavailable)?
                .rows_affected();
            deleted += done;
            if done < COMPACT_BATCH as u64 {
                return Ok(deleted);
            }
        }
    }

    /// Compacts `topic` unless this instance compacted it less than a second ago;
    /// failures are only logged.
    pub(crate) async fn maybe_compact(&self, topic: &str) {
        let due = {
            let last = self
                .last_compaction_ms
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            now_ms() - last.get(topic).copied().unwrap_or(0) >= COMPACT_EVERY_MS
        };
        if !due {
            return;
        }
        if let Err(e) = self.compact_topic(topic).await {
            tracing::debug!(error = %e, topic, "embedded broker compaction failed");
        }
    }
}

#[async_trait]
impl Broker for EmbeddedBroker {
    fn publisher(&self) -> Arc<dyn Publisher> {
        Arc::new(EmbeddedPublisher::new(self.shared.clone()))
    }

    /// Creates the topics that do not exist yet, in one transaction.
    async fn declare(&self, topics: &[String]) -> Result<(), BrokerError> {
        if let Some(bad) = topics.iter().find(|t| t.is_empty()) {
            return Err(BrokerError::Topology(format!("invalid topic name {bad:?}")));
        }
        if topics.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .shared
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let now = now_ms();
        for topic in topics {
            sqlx::query(SQL_DECLARE_TOPIC)
                .bind(topic)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        let mut known = self
            .shared
            .known_topics
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        known.extend(topics.iter().cloned());
        Ok(())
    }

    /// Joins `options.group` of a declared topic; a group new to the topic
    /// starts with every message still stored. `max_in_flight` 0 counts as 1.
    async fn subscribe(
        &self,
        topic: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, BrokerError> {
        if options.group.is_empty() {
            return Err(BrokerError::Topology("consumer group name is empty".into()));
        }
        if !self
            .shared
            .undeclared(&BTreeSet::from([topic]))
            .await?
            .is_empty()
        {
            return Err(BrokerError::Topology(format!(
                "unknown topic {topic:?}: declare it first"
            )));
        }
        sqlx::query(SQL_JOIN_GROUP)
            .bind(topic)
            .bind(&options.group)
            .bind(now_ms())
            .execute(&self.shared.pool)
            .await
            .map_err(unavailable)?;
        Ok(Box::new(EmbeddedSubscription::new(
            self.shared.clone(),
            topic.to_string(),
            options,
        )))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        sqlx::query(SQL_PING)
            .execute(&self.shared.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    // no message positions: redrive waits for a lag of 0 instead
    async fn consumer_mark(
        &self,
        _topic: &str,
        _group: &str,
    ) -> Result<Option<ConsumerMark>, BrokerError> {
        Ok(None)
    }

    async fn consumer_passed(
        &self,
        _topic: &str,
        _group: &str,
        _mark: &ConsumerMark,
    ) -> Result<Option<bool>, BrokerError> {
        Ok(None)
    }

    /// Messages the group has not acknowledged (`None` for an undeclared
    /// topic).
    async fn consumer_lag(&self, topic: &str, group: &str) -> Result<Option<u64>, BrokerError> {
        if !self
            .shared
            .undeclared(&BTreeSet::from([topic]))
            .await?
            .is_empty()
        {
            return Ok(None);
        }
        let lag: i64 = sqlx::query_scalar(SQL_CONSUMER_LAG)
            .bind(topic)
            .bind(group)
            .fetch_one(&self.shared.pool)
            .await
            .map_err(unavailable)?;
        Ok(Some(u64::try_from(lag).unwrap_or(0)))
    }

    /// A group's subscribers compete for its one queue.
    fn owned_partitions(&self) -> bool {
        false
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}
