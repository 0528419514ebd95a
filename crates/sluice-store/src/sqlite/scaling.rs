//! Autoscaling figures (see [`crate::QueueScaling`]).

use sluice_core::EpochMs;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

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
        let rows = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        fold_queue_scaling(queues, rows)
    }
}

fn row(r: &SqliteRow) -> Result<ScalingRow, StoreError> {
    Ok(ScalingRow {
        queue: r.try_get("queue").map_err(map_err)?,
        pending: r.try_get("pending").map_err(map_err)?,
        published: r.try_get("published").map_err(map_err)?,
        in_flight: r.try_get("in_flight").map_err(map_err)?,
        retrying: r.try_get("retrying").map_err(map_err)?,
        dead: r.try_get("dead").map_err(map_err)?,
        published_since: r.try_get("published_since").map_err(map_err)?,
        due_jobs: r.try_get("due_jobs").map_err(map_err)?,
        oldest_due_job: r.try_get("oldest_due_job").map_err(map_err)?,
        oldest_due: r.try_get("oldest_due").map_err(map_err)?,
    })
}
