//! Decoding rows into model values, and the column arrays `UNNEST` takes.

use std::collections::BTreeMap;

use sluice_core::{EpochMs, JobId, JobStatus};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryScalar;
use sqlx::{Postgres, Row};
use uuid::Uuid;

use super::map_err;
use crate::{JobRecord, NewJob, StoreError};

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn to_u32(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|e| corrupt(what, e))
}

pub(super) fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(col).map_err(map_err)
}

pub(super) fn job_id(row: &PgRow, col: &str) -> Result<JobId, StoreError> {
    Ok(JobId::from(get::<Uuid>(row, col)?))
}

/// Parses a JSON column selected as text.
pub(super) fn json<T: serde::de::DeserializeOwned>(
    row: &PgRow,
    col: &str,
) -> Result<T, StoreError> {
    let text: &str = get(row, col)?;
    serde_json::from_str(text).map_err(|e| corrupt(col, e))
}

/// A job from a `jobs` row (selected by `job_get.sql` and friends).
pub(super) fn job_row(row: &PgRow) -> Result<JobRecord, StoreError> {
    let status: &str = get(row, "status")?;
    let job = JobRecord {
        id: job_id(row, "id")?,
        queue: get(row, "queue")?,
        status: status
            .parse::<JobStatus>()
            .map_err(|e| corrupt("status", e))?,
        attempts: to_u32(get(row, "attempts")?, "attempts")?,
        max_attempts: to_u32(get(row, "max_attempts")?, "max_attempts")?,
        key: get(row, "key")?,
        payload: json(row, "payload")?,
        headers: json::<BTreeMap<String, String>>(row, "headers")?,
        traceparent: get(row, "traceparent")?,
        last_error: get(row, "last_error")?,
        replay_count: to_u32(get(row, "replay_count")?, "replay_count")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    };
    Ok(job)
}

/// Text PostgreSQL can store: `text` columns reject NUL characters, so they
/// become U+FFFD (error messages from handlers may carry anything).
pub(super) fn pg_text(s: &str) -> String {
    sluice_core::without_nul(s.to_string())
}

/// The columns of new jobs, one array per column, for `UNNEST`.
#[derive(Default)]
pub(super) struct JobColumns {
    pub ids: Vec<Uuid>,
    pub queues: Vec<String>,
    pub payloads: Vec<String>,
    pub keys: Vec<Option<String>>,
    pub headers: Vec<String>,
    pub traceparents: Vec<Option<String>>,
    pub max_attempts: Vec<i64>,
    pub available_at: Vec<EpochMs>,
}

impl JobColumns {
    /// Adds `job` stored under `id`.
    pub fn push(&mut self, id: JobId, job: &NewJob) -> Result<(), StoreError> {
        self.ids.push(id.as_uuid());
        self.queues.push(job.queue.clone());
        self.payloads
            .push(serde_json::to_string(&job.payload).map_err(|e| corrupt("payload", e))?);
        self.keys.push(job.key.clone());
        self.headers
            .push(serde_json::to_string(&job.headers).map_err(|e| corrupt("headers", e))?);
        self.traceparents.push(job.traceparent.clone());
        self.max_attempts.push(i64::from(job.max_attempts));
        self.available_at.push(job.available_at);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Binds the columns both job inserts (`job_insert.sql`,
    /// `job_insert_if_absent.sql`) take first, as `$1`..`$7`: ids, queues,
    /// payloads, keys, headers, traceparents, max attempts.
    pub fn bind<'q, O>(
        &'q self,
        query: QueryScalar<'q, Postgres, O, PgArguments>,
    ) -> QueryScalar<'q, Postgres, O, PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.queues)
            .bind(&self.payloads)
            .bind(&self.keys)
            .bind(&self.headers)
            .bind(&self.traceparents)
            .bind(&self.max_attempts)
    }
}

/// Jobs that died, as the column arrays of their dead letters and of their
/// dead-letter outbox rows.
#[derive(Default)]
pub(super) struct DeadLetters {
    ids: Vec<Uuid>,
    queues: Vec<String>,
    errors: Vec<String>,
    attempts: Vec<i64>,
    replays: Vec<i64>,
}

impl DeadLetters {
    /// A job of `queue` that died after `attempts` attempts of its run
    /// `replay_count`, with `error`.
    pub fn push(
        &mut self,
        id: Uuid,
        queue: String,
        error: String,
        attempts: i64,
        replay_count: i64,
    ) {
        self.ids.push(id);
        self.queues.push(queue);
        self.errors.push(error);
        self.attempts.push(attempts);
        self.replays.push(replay_count);
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ids(&self) -> &[Uuid] {
        &self.ids
    }

    /// Records the dead letters and their publications to their queues'
    /// dead-letter topics (due at once, published by the relay).
    pub async fn insert(
        &self,
        conn: &mut sqlx::PgConnection,
        now: EpochMs,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(include_str!("sql/dead_letter_upsert.sql"))
            .bind(now)
            .bind(&self.ids)
            .bind(&self.queues)
            .bind(&self.errors)
            .bind(&self.attempts)
            .bind(&self.replays)
            .execute(&mut *conn)
            .await?;
        sqlx::query(include_str!("sql/outbox_insert_dead_letter.sql"))
            .bind(now)
            .bind(&self.ids)
            .bind(&self.queues)
            .bind(&self.attempts)
            .bind(&self.errors)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
