//! Autoscaling figures (see [`crate::QueueScaling`]).

use sluice_core::EpochMs;

use super::{map_err, SqliteStore};
use crate::scaling::{fold_queue_scaling, ScalingRow};
use crate::{QueueScaling, StoreError};

impl SqliteStore {
    pub(super) async fn scaling(
        &self,
        queues: &[String],
        now: EpochMs,
    ) -> Result<Vec<QueueScaling>, StoreError> {
        let names = serde_json::to_string(queues)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode queue names: {e}")))?;
        let rows = sqlx::query(include_str!("sql/queue_scaling.sql"))
            .bind(now)
            .bind(names)
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        let rows = rows
            .iter()
            .map(|r| ScalingRow::decode(r).map_err(map_err))
            .collect::<Result<Vec<_>, _>>()?;
        fold_queue_scaling(queues, rows)
    }
}
