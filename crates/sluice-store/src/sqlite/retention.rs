//! [`RetentionStore`] for SQLite: each batch is one write transaction.

use async_trait::async_trait;
use sluice_core::EpochMs;
use sqlx::Row;

use super::{delete_jobs, map_err, SqliteStore};
use crate::{RetentionStore, StoreError};

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn prune_succeeded(&self, before: EpochMs, limit: usize) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let ids: String = sqlx::query(include_str!("sql/jobs_prune_list.sql"))
            .bind(before)
            .bind(limit)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?
            .try_get("ids")
            .map_err(map_err)?;
        let deleted = delete_jobs(&mut tx, &ids).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(deleted)
    }

    async fn prune_idempotency_keys(
        &self,
        before: EpochMs,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(include_str!("sql/idempotency_prune.sql"))
            .bind(before)
            .bind(limit)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
