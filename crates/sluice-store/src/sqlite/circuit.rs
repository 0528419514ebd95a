//! [`CircuitStore`] for SQLite: the breaker's row in `queue_state`, written
//! through the one writer connection.

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs};
use sqlx::Row;

use super::{map_err, SqliteStore};
use crate::{Circuit, CircuitState, CircuitStore, StoreError};

impl SqliteStore {
    /// Runs one circuit statement in a write transaction; returns whether
    /// it returned a row.
    async fn circuit_write(
        &self,
        sql: &'static str,
        queue: &str,
        until: Option<EpochMs>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut q = sqlx::query(sql).bind(queue);
        if let Some(until) = until {
            q = q.bind(until);
        }
        let row = q
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(row.is_some())
    }
}

#[async_trait]
impl CircuitStore for SqliteStore {
    async fn open_circuit(&self, queue: &str, until: EpochMs) -> Result<bool, StoreError> {
        self.circuit_write(include_str!("sql/circuit_open.sql"), queue, Some(until))
            .await
    }

    async fn claim_probe(&self, queue: &str, claim_until: EpochMs) -> Result<bool, StoreError> {
        self.circuit_write(
            include_str!("sql/circuit_claim_probe.sql"),
            queue,
            Some(claim_until),
        )
        .await
    }

    async fn close_circuit(&self, queue: &str) -> Result<(), StoreError> {
        self.circuit_write(include_str!("sql/circuit_close.sql"), queue, None)
            .await
            .map(|_| ())
    }

    async fn circuits(&self) -> Result<Vec<Circuit>, StoreError> {
        let rows = sqlx::query(include_str!("sql/circuit_list.sql"))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(Circuit {
                    queue: r.try_get("queue").map_err(map_err)?,
                    state: CircuitState::parse(r.try_get("circuit").map_err(map_err)?)?,
                    until: r.try_get("circuit_until").map_err(map_err)?,
                    changed_at: r.try_get("circuit_changed_at").map_err(map_err)?,
                })
            })
            .collect()
    }
}
