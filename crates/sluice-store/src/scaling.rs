//! Figures an outside autoscaler (KEDA, an HPA on external metrics) scales
//! workers and relays by, derived from the jobs and outbox tables.

use sluice_core::EpochMs;

use crate::StoreError;

/// One queue's autoscaling figures at a moment `now` (see
/// [`Store::queue_scaling`](crate::Store::queue_scaling)).
///
/// A job is in exactly one of `pending`, `published`, `in_flight`,
/// `retrying` and `dead` (succeeded jobs are not counted);
/// `backlog` counts the jobs a worker could start now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueScaling {
    pub queue: String,
    /// Status `pending`: accepted, not yet on the broker (delayed ones too).
    pub pending: u64,
    /// Status `published` with no attempt running: on the broker waiting for
    /// a worker, or back there after its worker's lease expired.
    pub published: u64,
    /// Attempts started whose lease still holds.
    pub in_flight: u64,
    /// Status `retrying`: waiting for their backoff to pass or for the relay.
    pub retrying: u64,
    /// Status `dead`.
    pub dead: u64,
    /// Work a worker could start now: `published`, plus `pending` and
    /// `retrying` jobs whose outbox row is due.
    pub backlog: u64,
    /// Since when the longest-waiting job of the backlog has been waiting:
    /// its outbox row's `available_at`, or for `published` jobs the time
    /// they were published (or their worker's lease ran out). `None`
    /// without a backlog.
    pub oldest_backlog_since: Option<EpochMs>,
    /// `available_at` of the queue's oldest due outbox row (job or
    /// dead-letter publication): how far the relay is behind.
    pub oldest_outbox_due: Option<EpochMs>,
}

impl QueueScaling {
    /// Zero figures for `queue`.
    pub fn empty(queue: &str) -> Self {
        Self {
            queue: queue.to_string(),
            ..Self::default()
        }
    }
}

/// One row of the backends' `queue_scaling` SQL: per queue, the job counts
/// by state and the outbox's due figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScalingRow {
    pub queue: String,
    pub pending: i64,
    pub published: i64,
    pub in_flight: i64,
    pub retrying: i64,
    pub dead: i64,
    /// When the oldest `published`, not running job started waiting.
    pub published_since: Option<EpochMs>,
    /// Due outbox rows of kind `job`.
    pub due_jobs: i64,
    pub oldest_due_job: Option<EpochMs>,
    pub oldest_due: Option<EpochMs>,
}

impl ScalingRow {
    /// Decodes a row of either backend's `queue_scaling.sql`.
    pub(crate) fn decode<R>(r: &R) -> Result<Self, sqlx::Error>
    where
        R: sqlx::Row,
        for<'c> &'c str: sqlx::ColumnIndex<R>,
        String: for<'v> sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
        i64: for<'v> sqlx::Decode<'v, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(Self {
            queue: r.try_get("queue")?,
            pending: r.try_get("pending")?,
            published: r.try_get("published")?,
            in_flight: r.try_get("in_flight")?,
            retrying: r.try_get("retrying")?,
            dead: r.try_get("dead")?,
            published_since: r.try_get("published_since")?,
            due_jobs: r.try_get("due_jobs")?,
            oldest_due_job: r.try_get("oldest_due_job")?,
            oldest_due: r.try_get("oldest_due")?,
        })
    }
}

/// One entry per requested queue, in order; queues absent from `rows` have
/// zero figures.
pub(crate) fn fold_queue_scaling(
    queues: &[String],
    rows: Vec<ScalingRow>,
) -> Result<Vec<QueueScaling>, StoreError> {
    let count =
        |n: i64| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")));
    let mut out: Vec<QueueScaling> = queues.iter().map(|q| QueueScaling::empty(q)).collect();
    for row in rows {
        let Some(s) = out.iter_mut().find(|s| s.queue == row.queue) else {
            continue;
        };
        s.pending = count(row.pending)?;
        s.published = count(row.published)?;
        s.in_flight = count(row.in_flight)?;
        s.retrying = count(row.retrying)?;
        s.dead = count(row.dead)?;
        s.backlog = s.published + count(row.due_jobs)?;
        s.oldest_backlog_since = [row.published_since, row.oldest_due_job]
            .into_iter()
            .flatten()
            .min();
        s.oldest_outbox_due = row.oldest_due;
    }
    Ok(out)
}
