//! Decoding rows into model values, and binding model values.

use std::collections::BTreeMap;

use sluice_core::{EpochMs, JobId, JobStatus};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::map_err;
use crate::{JobRecord, NewJob, OutboxKind, StoreError};

/// A `jobs` row with its lease (selected by `job_get.sql` / `attempt_start.sql`).
pub(super) struct JobRow {
    pub job: JobRecord,
    pub lease_token: Option<String>,
    pub lease_until: Option<EpochMs>,
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn job_id(s: &str) -> Result<JobId, StoreError> {
    s.parse().map_err(|e| corrupt("job id", e))
}

pub(super) fn to_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| corrupt(what, e))
}

pub(super) fn job_row(row: &SqliteRow) -> Result<JobRow, StoreError> {
    let id: String = row.try_get("id").map_err(map_err)?;
    let status: String = row.try_get("status").map_err(map_err)?;
    let payload: String = row.try_get("payload").map_err(map_err)?;
    let headers: String = row.try_get("headers").map_err(map_err)?;
    let job = JobRecord {
        id: job_id(&id)?,
        queue: row.try_get("queue").map_err(map_err)?,
        status: status
            .parse::<JobStatus>()
            .map_err(|e| corrupt("status", e))?,
        attempts: to_u32(row.try_get("attempts").map_err(map_err)?, "attempts")?,
        max_attempts: to_u32(
            row.try_get("max_attempts").map_err(map_err)?,
            "max_attempts",
        )?,
        key: row.try_get("key").map_err(map_err)?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("payload", e))?,
        headers: serde_json::from_str::<BTreeMap<String, String>>(&headers)
            .map_err(|e| corrupt("headers", e))?,
        traceparent: row.try_get("traceparent").map_err(map_err)?,
        last_error: row.try_get("last_error").map_err(map_err)?,
        replay_count: to_u32(
            row.try_get("replay_count").map_err(map_err)?,
            "replay_count",
        )?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
    };
    Ok(JobRow {
        job,
        lease_token: row.try_get("lease_token").map_err(map_err)?,
        lease_until: row.try_get("lease_until").map_err(map_err)?,
    })
}

/// Inserts a job row with `status` (no outbox row); `if_absent` turns an
/// existing id into a no-op instead of an error. Returns rows inserted.
pub(super) async fn insert_job(
    conn: &mut sqlx::SqliteConnection,
    id: JobId,
    job: &NewJob,
    status: JobStatus,
    now: EpochMs,
    if_absent: bool,
) -> Result<u64, StoreError> {
    let sql = if if_absent {
        include_str!("sql/job_insert_if_absent.sql")
    } else {
        include_str!("sql/job_insert.sql")
    };
    let payload = serde_json::to_string(&job.payload).map_err(|e| corrupt("payload", e))?;
    let headers = serde_json::to_string(&job.headers).map_err(|e| corrupt("headers", e))?;
    let done = sqlx::query(sql)
        .bind(id.to_string())
        .bind(&job.queue)
        .bind(status.as_str())
        .bind(payload)
        .bind(&job.key)
        .bind(headers)
        .bind(&job.traceparent)
        .bind(i64::from(job.max_attempts))
        .bind(now)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected())
}

/// Inserts an outbox row for `attempt` of a job.
pub(super) async fn insert_outbox(
    conn: &mut sqlx::SqliteConnection,
    job_id: JobId,
    queue: &str,
    attempt: u32,
    available_at: EpochMs,
    now: EpochMs,
) -> Result<(), StoreError> {
    sqlx::query(include_str!("sql/outbox_insert.sql"))
        .bind(job_id.to_string())
        .bind(queue)
        .bind(i64::from(attempt))
        .bind(available_at)
        .bind(now)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Records that a job of `queue` died with `error` after `attempts`
/// attempts of its run `replay_count`: its dead letter, and the outbox row
/// publishing it to the queue's dead-letter topic, due now.
pub(super) async fn insert_dead_letter(
    conn: &mut sqlx::SqliteConnection,
    job_id: JobId,
    queue: &str,
    error: &str,
    attempts: i64,
    replay_count: i64,
    now: EpochMs,
) -> Result<(), StoreError> {
    let id = job_id.to_string();
    sqlx::query(include_str!("sql/dead_letter_upsert.sql"))
        .bind(&id)
        .bind(queue)
        .bind(now)
        .bind(error)
        .bind(attempts)
        .bind(replay_count)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    sqlx::query(include_str!("sql/outbox_insert_dead_letter.sql"))
        .bind(&id)
        .bind(queue)
        .bind(attempts)
        .bind(error)
        .bind(now)
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// The kind of an outbox row from its `kind` and `error` columns.
pub(super) fn outbox_kind(kind: String, error: Option<String>) -> Result<OutboxKind, StoreError> {
    match kind.as_str() {
        "job" => Ok(OutboxKind::Job),
        "dead_letter" => Ok(OutboxKind::DeadLetter {
            error: error.ok_or_else(|| corrupt("outbox row", "dead letter without error"))?,
        }),
        other => Err(corrupt("outbox kind", format!("unknown kind {other:?}"))),
    }
}

/// A JSON array text, for `json_each` parameters.
pub(super) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
