//! [`ConcurrencyStore`] for SQLite: rows of `worker_concurrency`, written
//! through the one writer connection.

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs};
use sqlx::Row;

use super::{map_err, SqliteStore};
use crate::{ConcurrencyStore, QueueConcurrency, StoreError};

#[async_trait]
impl ConcurrencyStore for SqliteStore {
    async fn report_concurrency(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        expires_at: EpochMs,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(include_str!("sql/concurrency_expire.sql"))
            .bind(queue)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(include_str!("sql/concurrency_report.sql"))
            .bind(queue)
            .bind(worker)
            .bind(i64::from(limit))
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn concurrency(&self, now: EpochMs) -> Result<Vec<QueueConcurrency>, StoreError> {
        let rows = sqlx::query(include_str!("sql/concurrency_list.sql"))
            .bind(now)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(QueueConcurrency::from_row(
                    r.try_get("queue").map_err(map_err)?,
                    r.try_get("total").map_err(map_err)?,
                    r.try_get("workers").map_err(map_err)?,
                ))
            })
            .collect()
    }
}
