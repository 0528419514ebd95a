//! [`RetentionStore`] for SQLite: each batch is one write transaction.

use async_trait::async_trait;
use sluice_core::EpochMs;
use sqlx::Row;

use super::{map_err, SqliteStore};
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
        let mut deleted = 0;
        // outbox rows and history before the jobs they name
        for sql in [
            include_str!("sql/outbox_delete_jobs.sql"),
            include_str!("sql/attempts_delete_jobs.sql"),
            include_str!("sql/jobs_delete.sql"),
        ] {
            deleted = sqlx::query(sql)
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
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
