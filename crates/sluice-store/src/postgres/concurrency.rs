//! [`ConcurrencyStore`] for PostgreSQL: rows of `worker_concurrency`.

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs};

use super::rows::get;
use super::PgStore;
use crate::{ConcurrencyStore, QueueConcurrency, StoreError};

#[async_trait]
impl ConcurrencyStore for PgStore {
    async fn report_concurrency(
        &self,
        queue: &str,
        worker: &str,
        limit: u32,
        expires_at: EpochMs,
    ) -> Result<(), StoreError> {
        let pool = &self.pool;
        self.run("report concurrency", move || async move {
            let mut tx = pool.begin().await?;
            sqlx::query(include_str!("sql/concurrency_expire.sql"))
                .bind(queue)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            sqlx::query(include_str!("sql/concurrency_report.sql"))
                .bind(queue)
                .bind(worker)
                .bind(i64::from(limit))
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn concurrency(&self, now: EpochMs) -> Result<Vec<QueueConcurrency>, StoreError> {
        let pool = &self.pool;
        let rows = self
            .run("concurrency", move || async move {
                Ok(sqlx::query(include_str!("sql/concurrency_list.sql"))
                    .bind(now)
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueConcurrency::from_row(
                    get(r, "queue")?,
                    get(r, "total")?,
                    get(r, "workers")?,
                ))
            })
            .collect()
    }
}
