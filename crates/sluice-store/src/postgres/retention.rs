//! [`RetentionStore`] for PostgreSQL: batched deletes that skip rows another
//! pruner holds.

use async_trait::async_trait;
use sluice_core::EpochMs;

use super::PgStore;
use crate::{RetentionStore, StoreError};

#[async_trait]
impl RetentionStore for PgStore {
    async fn prune_succeeded(&self, before: EpochMs, limit: usize) -> Result<u64, StoreError> {
        let sql = include_str!("sql/jobs_prune.sql");
        self.prune("prune succeeded jobs", sql, before, limit).await
    }

    async fn prune_idempotency_keys(
        &self,
        before: EpochMs,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let sql = include_str!("sql/idempotency_prune.sql");
        self.prune("prune idempotency keys", sql, before, limit)
            .await
    }
}

impl PgStore {
    /// Runs one prune statement (`$1` before, `$2` limit, one count back).
    async fn prune(
        &self,
        what: &str,
        sql: &'static str,
        before: EpochMs,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let pool = &self.pool;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let n: i64 = self
            .run(what, move || async move {
                Ok(sqlx::query_scalar(sql)
                    .bind(before)
                    .bind(limit)
                    .fetch_one(pool)
                    .await?)
            })
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
