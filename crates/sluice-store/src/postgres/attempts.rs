//! [`AttemptStore`] for PostgreSQL: a batch of starts (or of completions) is
//! one transaction with a fixed number of multi-row statements. Starts are
//! in [`super::start`]; completions are fenced by lease token and attempt in
//! the `UPDATE` itself. A batch of successes of distinct jobs is that
//! `UPDATE` alone, in autocommit: one round trip.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs, JobId, JobStatus};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use uuid::Uuid;

use super::rows::{corrupt, get, pg_text, to_u32, DeadLetters};
use super::start::{plain, start_next, start_tx};
use super::{millis, split_on_failure, Fail, PgStore};
use crate::{
    AttemptStore, Completion, LeaseToken, Outcome, StartOutcome, StartRequest, StoreError,
};

#[async_trait]
impl AttemptStore for PgStore {
    /// The common starts first, in one statement ([`start_next`]); the
    /// requests it leaves, and every batch it cannot take, in one
    /// transaction each batch ([`start_tx`]). The two are retried apart, so
    /// a retry never decides again on a job this call already started, and
    /// a failing full path fails only the requests it was given.
    async fn start_attempts(
        &self,
        requests: Vec<StartRequest>,
        lease: Duration,
    ) -> Vec<Result<StartOutcome, StoreError>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let lease_ms = millis(lease);
        let pool = &self.pool;
        let reqs = &requests;
        // Atomic: when it fails nothing started, and the full path decides.
        let next = if plain(reqs) {
            self.run("start attempts", move || start_next(pool, reqs, lease_ms))
                .await
                .inspect_err(|e| tracing::debug!(error = %e, "single-statement starts failed; deciding the batch in full"))
                .ok()
        } else {
            None
        };
        let Some(next) = next else {
            return self.start_all(reqs, lease_ms).await;
        };
        // The requests it left, in order, by the full path; their answers
        // fill the gaps in the same order.
        let others: Vec<StartRequest> = reqs
            .iter()
            .zip(&next)
            .filter(|(_, n)| n.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let mut decided = match others.is_empty() {
            true => Vec::new(),
            false => self.start_all(&others, lease_ms).await,
        }
        .into_iter();
        next.into_iter()
            .map(|n| match n {
                Some(started) => Ok(started),
                None => decided
                    .next()
                    .unwrap_or_else(|| Err(corrupt("start", "request left unanswered"))),
            })
            .collect()
    }

    async fn finish_attempts(&self, completions: Vec<Completion>) -> Vec<Result<(), StoreError>> {
        if completions.is_empty() {
            return Vec::new();
        }
        let first = self.finish_batch(&completions).await;
        let cs = &completions;
        split_on_failure(first, completions.len(), move |i| {
            self.finish_batch(std::slice::from_ref(&cs[i]))
        })
        .await
    }

    async fn abandon_attempt(
        &self,
        job_id: JobId,
        lease: &LeaseToken,
        attempt: u32,
        took_over: bool,
    ) -> Result<bool, StoreError> {
        let pool = &self.pool;
        let done = self
            .run("abandon attempt", move || async move {
                Ok(sqlx::query(include_str!("sql/attempt_abandon.sql"))
                    .bind(job_id.as_uuid())
                    .bind(&lease.0)
                    .bind(i64::from(attempt))
                    .bind(now_ms())
                    .bind(took_over)
                    .execute(pool)
                    .await?)
            })
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

impl PgStore {
    /// `requests` by the full path, one transaction, each request alone
    /// if the batch fails.
    async fn start_all(
        &self,
        requests: &[StartRequest],
        lease_ms: i64,
    ) -> Vec<Result<StartOutcome, StoreError>> {
        let first = self.start_batch(requests, lease_ms).await;
        split_on_failure(first, requests.len(), move |i| {
            self.start_batch(std::slice::from_ref(&requests[i]), lease_ms)
        })
        .await
    }

    async fn start_batch(
        &self,
        requests: &[StartRequest],
        lease_ms: i64,
    ) -> Result<Vec<Result<StartOutcome, StoreError>>, StoreError> {
        let pool = &self.pool;
        self.run("start attempts", move || start_tx(pool, requests, lease_ms))
            .await
    }

    async fn finish_batch(
        &self,
        completions: &[Completion],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let pool = &self.pool;
        let (results, added) = self
            .run("finish attempts", move || finish_tx(pool, completions))
            .await?;
        if added {
            self.wake_relays();
        }
        Ok(results)
    }
}

/// Splits completions into rounds in which each job appears once, in order:
/// a later completion of the same job must see the earlier one's effect.
fn rounds(completions: &[Completion]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut last: HashMap<JobId, usize> = HashMap::new();
    for (i, c) in completions.iter().enumerate() {
        let r = last.get(&c.job_id).map_or(0, |r| r + 1);
        last.insert(c.job_id, r);
        if rounds.len() <= r {
            rounds.resize_with(r + 1, Vec::new);
        }
        rounds[r].push(i);
    }
    rounds
}

/// The columns of the per-outcome statements of one round.
#[derive(Default)]
struct Finished {
    // attempt history (failed attempts only)
    h_ids: Vec<Uuid>,
    h_replays: Vec<i64>,
    h_attempts: Vec<i64>,
    h_started: Vec<EpochMs>,
    h_outcomes: Vec<&'static str>,
    h_errors: Vec<Option<String>>,
    // retry rows
    r_ids: Vec<Uuid>,
    r_queues: Vec<String>,
    r_attempts: Vec<i64>,
    r_available: Vec<EpochMs>,
    dead: DeadLetters,
}

async fn finish_tx(
    pool: &PgPool,
    completions: &[Completion],
) -> Result<(Vec<Result<(), StoreError>>, bool), Fail> {
    let now = now_ms();
    let mut results: Vec<Result<(), StoreError>> = completions
        .iter()
        .map(|_| Err(StoreError::LeaseLost))
        .collect();
    let by_round = rounds(completions);
    if by_round.len() == 1
        && completions
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Succeeded))
    {
        // Nothing but the job rows changes: no history, outbox or dead letter.
        for row in finish_round(pool, completions, &by_round[0], now).await? {
            results[index(&row, completions)?] = Ok(());
        }
        return Ok((results, false));
    }
    // Whether an outbox row (a retry or a dead letter's) was added.
    let mut added = false;
    let mut tx = pool.begin().await?;
    for round in by_round {
        let rows = finish_round(&mut *tx, completions, &round, now).await?;
        let mut f = Finished::default();
        for row in &rows {
            let i = index(row, completions)?;
            let c = &completions[i];
            let queue: String = get(row, "queue")?;
            let job_attempts: i64 = get(row, "attempts")?;
            let replay_count: i64 = get(row, "replay_count")?;
            let id = c.job_id.as_uuid();
            let (outcome, error) = match &c.outcome {
                // the job row is the record of a success
                Outcome::Succeeded => {
                    results[i] = Ok(());
                    continue;
                }
                Outcome::Retry { error, .. } => ("retry", pg_text(error)),
                Outcome::Dead { error } => ("dead", pg_text(error)),
            };
            f.h_ids.push(id);
            f.h_replays.push(replay_count);
            f.h_attempts.push(i64::from(c.attempt));
            f.h_started.push(c.started_at);
            f.h_outcomes.push(outcome);
            f.h_errors.push(Some(error.clone()));
            match &c.outcome {
                Outcome::Succeeded => {}
                Outcome::Retry { available_at, .. } => {
                    let next = to_u32(job_attempts, "attempts")?.saturating_add(1);
                    f.r_ids.push(id);
                    f.r_queues.push(queue);
                    f.r_attempts.push(i64::from(next));
                    f.r_available.push(*available_at);
                }
                Outcome::Dead { .. } => {
                    f.dead.push(id, queue, error, job_attempts, replay_count);
                }
            }
            results[i] = Ok(());
        }
        if !f.h_ids.is_empty() {
            sqlx::query(include_str!("sql/attempt_history_insert.sql"))
                .bind(now)
                .bind(&f.h_ids)
                .bind(&f.h_replays)
                .bind(&f.h_attempts)
                .bind(&f.h_started)
                .bind(&f.h_outcomes)
                .bind(&f.h_errors)
                .execute(&mut *tx)
                .await?;
        }
        if !f.r_ids.is_empty() {
            sqlx::query(include_str!("sql/outbox_insert.sql"))
                .bind(now)
                .bind(&f.r_ids)
                .bind(&f.r_queues)
                .bind(&f.r_attempts)
                .bind(&f.r_available)
                .execute(&mut *tx)
                .await?;
            added = true;
        }
        if !f.dead.is_empty() {
            f.dead.insert(&mut tx, now).await?;
            added = true;
        }
    }
    if added {
        sqlx::query(include_str!("sql/outbox_notify.sql"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((results, added))
}

/// Ends the attempts of `completions[i]` for each `i` of `round` (each job
/// at most once) whose lease still holds; returns their rows.
async fn finish_round<'c, E>(
    executor: E,
    completions: &[Completion],
    round: &[usize],
    now: EpochMs,
) -> Result<Vec<PgRow>, Fail>
where
    E: sqlx::PgExecutor<'c>,
{
    let mut idx = Vec::with_capacity(round.len());
    let mut ids = Vec::with_capacity(round.len());
    let mut tokens = Vec::with_capacity(round.len());
    let mut attempts = Vec::with_capacity(round.len());
    let mut statuses = Vec::with_capacity(round.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(round.len());
    let mut due: Vec<Option<EpochMs>> = Vec::with_capacity(round.len());
    for &i in round {
        let c = &completions[i];
        let (status, error) = match &c.outcome {
            Outcome::Succeeded => (JobStatus::Succeeded, None),
            Outcome::Retry { error, .. } => (JobStatus::Retrying, Some(pg_text(error))),
            Outcome::Dead { error } => (JobStatus::Dead, Some(pg_text(error))),
        };
        idx.push(i64::try_from(i).unwrap_or(i64::MAX));
        ids.push(c.job_id.as_uuid());
        tokens.push(c.lease.0.as_str());
        attempts.push(i64::from(c.attempt));
        statuses.push(status.as_str());
        errors.push(error);
        due.push(match &c.outcome {
            Outcome::Retry { available_at, .. } => Some(*available_at),
            _ => None,
        });
    }
    Ok(sqlx::query(include_str!("sql/attempt_finish.sql"))
        .bind(now)
        .bind(&idx)
        .bind(&ids)
        .bind(&tokens)
        .bind(&attempts)
        .bind(&statuses)
        .bind(&errors)
        .bind(&due)
        .fetch_all(executor)
        .await?)
}

/// The completion a row of `attempt_finish.sql` answers.
fn index(row: &PgRow, completions: &[Completion]) -> Result<usize, StoreError> {
    let i = usize::try_from(get::<i64>(row, "idx")?).map_err(|e| corrupt("idx", e))?;
    if i < completions.len() {
        Ok(i)
    } else {
        Err(corrupt("idx", "out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeaseToken;

    fn completion(id: JobId) -> Completion {
        Completion {
            job_id: id,
            lease: LeaseToken::new(),
            attempt: 1,
            started_at: 0,
            outcome: Outcome::Succeeded,
        }
    }

    #[test]
    fn one_job_per_round() {
        let (a, b) = (JobId::new(), JobId::new());
        let cs = [completion(a), completion(b), completion(a), completion(a)];
        assert_eq!(rounds(&cs), vec![vec![0, 1], vec![2], vec![3]]);
    }
}
