//! [`CircuitStore`] for PostgreSQL: the breaker's row in `queue_state`.

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs};
use sqlx::Row;

use super::PgStore;
use crate::{Circuit, CircuitState, CircuitStore, StoreError};

impl PgStore {
    /// Runs a circuit statement binding (queue, until, now); returns whether
    /// it returned a row.
    async fn circuit_flag(
        &self,
        what: &str,
        sql: &'static str,
        queue: &str,
        until: EpochMs,
    ) -> Result<bool, StoreError> {
        let pool = &self.pool;
        self.run(what, move || async move {
            let row = sqlx::query(sql)
                .bind(queue)
                .bind(until)
                .bind(now_ms())
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
        .await
    }
}

#[async_trait]
impl CircuitStore for PgStore {
    async fn open_circuit(&self, queue: &str, until: EpochMs) -> Result<bool, StoreError> {
        self.circuit_flag(
            "open circuit",
            include_str!("sql/circuit_open.sql"),
            queue,
            until,
        )
        .await
    }

    async fn claim_probe(&self, queue: &str, claim_until: EpochMs) -> Result<bool, StoreError> {
        let sql = include_str!("sql/circuit_claim_probe.sql");
        self.circuit_flag("claim probe", sql, queue, claim_until)
            .await
    }

    async fn close_circuit(&self, queue: &str) -> Result<(), StoreError> {
        let pool = &self.pool;
        self.run("close circuit", move || async move {
            sqlx::query(include_str!("sql/circuit_close.sql"))
                .bind(queue)
                .bind(now_ms())
                .execute(pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn circuits(&self) -> Result<Vec<Circuit>, StoreError> {
        let pool = &self.pool;
        let rows = self
            .run("circuits", move || async move {
                Ok(sqlx::query(include_str!("sql/circuit_list.sql"))
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Circuit {
                    queue: r.try_get("queue").map_err(corrupt)?,
                    state: CircuitState::parse(r.try_get("circuit").map_err(corrupt)?)?,
                    until: r.try_get("circuit_until").map_err(corrupt)?,
                    changed_at: r.try_get("circuit_changed_at").map_err(corrupt)?,
                })
            })
            .collect()
    }
}

fn corrupt(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
