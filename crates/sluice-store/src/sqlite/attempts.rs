//! [`AttemptStore`] for SQLite: starting attempts under a job lease and
//! recording their outcomes, each fenced by that lease.

use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs, JobId, JobStatus};
use sqlx::{Connection, Row, SqliteConnection};

use super::rows::{insert_dead_letter, insert_job, insert_outbox, job_row, to_u32};
use super::{map_err, millis, SqliteStore};
use crate::start_rule::{start_rule_for, StartRule};
use crate::{
    ActiveAttempt, AttemptStore, Completion, LeaseToken, Outcome, StartOutcome, StartRequest,
    StoreError,
};

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn start_attempts(
        &self,
        requests: Vec<StartRequest>,
        lease: Duration,
    ) -> Vec<Result<StartOutcome, StoreError>> {
        if requests.is_empty() {
            return Vec::new();
        }
        match self.start_tx(&requests, millis(lease)).await {
            Ok(results) => results,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn finish_attempts(&self, completions: Vec<Completion>) -> Vec<Result<(), StoreError>> {
        if completions.is_empty() {
            return Vec::new();
        }
        match self.finish_tx(&completions).await {
            Ok((results, added)) => {
                if added {
                    self.wake_relays();
                }
                results
            }
            Err(e) => completions.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn abandon_attempt(
        &self,
        job_id: JobId,
        lease: &LeaseToken,
        attempt: u32,
        took_over: bool,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let undone = sqlx::query(include_str!("sql/attempt_abandon.sql"))
            .bind(job_id.to_string())
            .bind(&lease.0)
            .bind(i64::from(attempt))
            .bind(now_ms())
            .bind(took_over)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(undone > 0)
    }
}

impl SqliteStore {
    async fn start_tx(
        &self,
        requests: &[StartRequest],
        lease_ms: i64,
    ) -> Result<Vec<Result<StartOutcome, StoreError>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let mut results = Vec::with_capacity(requests.len());
        for req in requests {
            let mut sp = tx.begin().await.map_err(map_err)?;
            let res = start_one(&mut sp, req, now, lease_ms).await;
            match &res {
                Ok(_) => sp.commit().await.map_err(map_err)?,
                Err(_) => sp.rollback().await.map_err(map_err)?,
            }
            results.push(res);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(results)
    }

    async fn finish_tx(
        &self,
        completions: &[Completion],
    ) -> Result<(Vec<Result<(), StoreError>>, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let mut results = Vec::with_capacity(completions.len());
        // Whether an outbox row (a retry or a dead letter's) was added.
        let mut added = false;
        for c in completions {
            let mut sp = tx.begin().await.map_err(map_err)?;
            let res = finish_one(&mut sp, c, now).await;
            match &res {
                Ok(()) => {
                    sp.commit().await.map_err(map_err)?;
                    added |= !matches!(c.outcome, Outcome::Succeeded);
                }
                Err(_) => sp.rollback().await.map_err(map_err)?,
            }
            results.push(res);
        }
        tx.commit().await.map_err(map_err)?;
        Ok((results, added))
    }
}

async fn start_one(
    conn: &mut SqliteConnection,
    req: &StartRequest,
    now: EpochMs,
    lease_ms: i64,
) -> Result<StartOutcome, StoreError> {
    if let Some(job) = &req.create {
        insert_job(&mut *conn, req.job_id, job, JobStatus::Published, now, true).await?;
    }
    let row = sqlx::query(include_str!("sql/job_get.sql"))
        .bind(req.job_id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    let Some(row) = row else {
        return Ok(StartOutcome::Missing);
    };
    let current = job_row(&row)?;
    let attempts = current.job.attempts;
    let rule = start_rule_for(
        req.attempt,
        req.lease.as_ref(),
        current.job.status,
        attempts,
        (current.lease_token.as_deref(), current.lease_until),
        now,
    );
    let resume = match rule {
        StartRule::Start => false,
        StartRule::Resume => true,
        StartRule::Busy(until) => return Ok(StartOutcome::Busy { until }),
        StartRule::Stale => return Ok(StartOutcome::Stale),
    };
    let token = req.lease.clone().unwrap_or_default();
    let lease_until = now.saturating_add(lease_ms);
    let query = match resume {
        true => sqlx::query(include_str!("sql/attempt_resume.sql")),
        false => sqlx::query(include_str!("sql/attempt_start.sql")),
    };
    let row = query
        .bind(&token.0)
        .bind(lease_until)
        .bind(now)
        .bind(req.job_id.to_string())
        .bind(i64::from(attempts))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::Unavailable("job changed while starting an attempt".into()))?;
    let started = job_row(&row)?;
    Ok(StartOutcome::Started(ActiveAttempt {
        lease: token,
        attempt: started.job.attempts,
        lease_until,
        job: started.job,
    }))
}

async fn finish_one(
    conn: &mut SqliteConnection,
    c: &Completion,
    now: EpochMs,
) -> Result<(), StoreError> {
    let (status, outcome, error) = match &c.outcome {
        Outcome::Succeeded => (JobStatus::Succeeded, "succeeded", None),
        Outcome::Retry { error, .. } => (JobStatus::Retrying, "retry", Some(error.as_str())),
        Outcome::Dead { error } => (JobStatus::Dead, "dead", Some(error.as_str())),
    };
    let id = c.job_id.to_string();
    let row = sqlx::query(include_str!("sql/attempt_finish.sql"))
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .bind(&id)
        .bind(&c.lease.0)
        .bind(i64::from(c.attempt))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or(StoreError::LeaseLost)?;
    let queue: String = row.try_get("queue").map_err(map_err)?;
    let attempts: i64 = row.try_get("attempts").map_err(map_err)?;
    let replay_count: i64 = row.try_get("replay_count").map_err(map_err)?;
    if matches!(c.outcome, Outcome::Succeeded) {
        // the job row is the record of a success
        return Ok(());
    }
    sqlx::query(include_str!("sql/attempt_history_insert.sql"))
        .bind(&id)
        .bind(replay_count)
        .bind(i64::from(c.attempt))
        .bind(c.started_at)
        .bind(now)
        .bind(outcome)
        .bind(error)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    match &c.outcome {
        Outcome::Succeeded => {}
        Outcome::Retry { available_at, .. } => {
            let next = to_u32(attempts, "attempts")?.saturating_add(1);
            insert_outbox(&mut *conn, c.job_id, &queue, next, *available_at, now).await?;
        }
        Outcome::Dead { error } => {
            insert_dead_letter(
                &mut *conn,
                c.job_id,
                &queue,
                error,
                attempts,
                replay_count,
                now,
            )
            .await?;
        }
    }
    Ok(())
}
