//! Autoscaling figures (see [`crate::QueueScaling`]).

use sluice_core::EpochMs;

use super::{map_err, PgStore};
use crate::scaling::{fold_queue_scaling, ScalingRow};
use crate::{QueueScaling, StoreError};

impl PgStore {
    pub(super) async fn scaling(
        &self,
        queues: &[String],
        now: EpochMs,
    ) -> Result<Vec<QueueScaling>, StoreError> {
        let pool = &self.pool;
        let rows = self
            .run("queue scaling", move || async move {
                Ok(sqlx::query(include_str!("sql/queue_scaling.sql"))
                    .bind(now)
                    .bind(queues)
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        let rows = rows
            .iter()
            .map(|r| ScalingRow::decode(r).map_err(map_err))
            .collect::<Result<Vec<_>, _>>()?;
        fold_queue_scaling(queues, rows)
    }
}
