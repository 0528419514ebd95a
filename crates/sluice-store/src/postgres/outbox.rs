//! [`OutboxStore`] for PostgreSQL: claims are one statement that locks due
//! rows with `FOR UPDATE SKIP LOCKED`, stamps them with a new lease token and
//! returns them with their jobs; every later change is fenced by that token.
//! While a connection can be spared, a claim instead only locks its rows, in
//! a transaction held open until they are marked (see [`held`]); any other
//! change to it first turns it into the stamped kind.

use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs, JobId};
use uuid::Uuid;

use super::rows::{corrupt, get, job_id, json, pg_text, to_u32, DeadLetters};
use super::{held, millis, PgStore};
use crate::{LeaseToken, LostJob, OutboxClaim, OutboxKind, OutboxRow, OutboxStore, StoreError};

/// The kind of an outbox row from its `kind` and `error` columns.
fn outbox_kind(kind: String, error: Option<String>) -> Result<OutboxKind, StoreError> {
    match kind.as_str() {
        "job" => Ok(OutboxKind::Job),
        "dead_letter" => Ok(OutboxKind::DeadLetter {
            error: error.ok_or_else(|| corrupt("outbox row", "dead letter without error"))?,
        }),
        other => Err(corrupt("outbox kind", format!("unknown kind {other:?}"))),
    }
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn claim_outbox(&self, limit: usize, lease: Duration) -> Result<OutboxClaim, StoreError> {
        let token = LeaseToken::new();
        if limit == 0 {
            return Ok(OutboxClaim {
                lease: token,
                rows: Vec::new(),
            });
        }
        let (pool, tok) = (&self.pool, &token);
        let lease_ms = millis(lease);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let claimed = match self.held.permit() {
            Some(permit) => {
                let open = self
                    .run("claim outbox", move || {
                        held::claim(pool, tok, limit, lease_ms)
                    })
                    .await?;
                self.held.hold(tok, open, lease, permit).await?
            }
            None => {
                self.run("claim outbox", move || async move {
                    let now = now_ms();
                    Ok(sqlx::query(include_str!("sql/outbox_claim.sql"))
                        .bind(&tok.0)
                        .bind(now.saturating_add(lease_ms))
                        .bind(now)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?)
                })
                .await?
            }
        };
        let mut rows = Vec::with_capacity(claimed.len());
        for row in &claimed {
            rows.push(OutboxRow {
                row_id: get(row, "row_id")?,
                job_id: job_id(row, "job_id")?,
                queue: get(row, "queue")?,
                attempt: to_u32(get(row, "attempt")?, "attempt")?,
                payload: json(row, "payload")?,
                key: get(row, "key")?,
                traceparent: get(row, "traceparent")?,
                created_at: get(row, "created_at")?,
                kind: outbox_kind(get(row, "kind")?, get(row, "error")?)?,
            });
        }
        Ok(OutboxClaim { lease: token, rows })
    }

    async fn mark_published(
        &self,
        lease: &LeaseToken,
        row_ids: &[i64],
    ) -> Result<usize, StoreError> {
        if row_ids.is_empty() {
            return Ok(0);
        }
        if let Some(marked) = self.held.mark_all(lease, row_ids).await {
            return marked;
        }
        let pool = &self.pool;
        let n: i64 = self
            .run("mark published", move || async move {
                Ok(sqlx::query_scalar(include_str!("sql/outbox_mark.sql"))
                    .bind(row_ids)
                    .bind(&lease.0)
                    .fetch_one(pool)
                    .await?)
            })
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn dead_letter_refused(
        &self,
        lease: &LeaseToken,
        refused: &[(i64, String)],
    ) -> Result<Vec<JobId>, StoreError> {
        if refused.is_empty() {
            return Ok(Vec::new());
        }
        self.held.unhold(lease).await;
        let row_ids: Vec<i64> = refused.iter().map(|(r, _)| *r).collect();
        let reasons: Vec<String> = refused.iter().map(|(_, e)| pg_text(e)).collect();
        let (pool, rows, reasons) = (&self.pool, &row_ids, &reasons);
        let dead: Vec<Uuid> = self
            .run("dead-letter refused rows", move || async move {
                let now = now_ms();
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(include_str!("sql/outbox_refuse.sql"))
                    .bind(now)
                    .bind(&lease.0)
                    .bind(rows)
                    .bind(reasons)
                    .fetch_all(&mut *tx)
                    .await?;
                if rows.is_empty() {
                    tx.commit().await?;
                    return Ok(Vec::new());
                }
                let mut dead = DeadLetters::default();
                for row in &rows {
                    dead.push(
                        get(row, "id")?,
                        get(row, "queue")?,
                        get(row, "reason")?,
                        get(row, "attempts")?,
                        get(row, "replay_count")?,
                    );
                }
                dead.insert(&mut tx, now).await?;
                sqlx::query(include_str!("sql/outbox_notify.sql"))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(dead.ids().to_vec())
            })
            .await?;
        if !dead.is_empty() {
            self.wake_relays();
        }
        Ok(dead.into_iter().map(JobId::from).collect())
    }

    async fn release_outbox(
        &self,
        lease: &LeaseToken,
        row_ids: &[i64],
        available_at: EpochMs,
    ) -> Result<usize, StoreError> {
        if row_ids.is_empty() {
            return Ok(0);
        }
        self.held.unhold(lease).await;
        let pool = &self.pool;
        let done = self
            .run("release outbox", move || async move {
                Ok(sqlx::query(include_str!("sql/outbox_release.sql"))
                    .bind(available_at)
                    .bind(row_ids)
                    .bind(&lease.0)
                    .execute(pool)
                    .await?)
            })
            .await?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn extend_claim(
        &self,
        token: &LeaseToken,
        row_ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<i64>, StoreError> {
        if row_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.held.unhold(token).await;
        let (pool, lease_ms) = (&self.pool, millis(lease));
        self.run("extend claim", move || async move {
            Ok(sqlx::query_scalar(include_str!("sql/outbox_extend.sql"))
                .bind(now_ms().saturating_add(lease_ms))
                .bind(row_ids)
                .bind(&token.0)
                .fetch_all(pool)
                .await?)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<EpochMs>, StoreError> {
        let pool = &self.pool;
        self.run("next due", move || async move {
            Ok(sqlx::query_scalar(include_str!("sql/outbox_next_due.sql"))
                .bind(now_ms())
                .fetch_optional(pool)
                .await?)
        })
        .await
    }

    async fn lost_jobs(
        &self,
        queue: &str,
        changed_before: EpochMs,
        limit: usize,
    ) -> Result<Vec<LostJob>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pool = &self.pool;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(Uuid, EpochMs)> = self
            .run("list lost jobs", move || async move {
                Ok(sqlx::query_as(include_str!("sql/outbox_lost.sql"))
                    .bind(queue)
                    .bind(changed_before)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, updated_at)| LostJob {
                id: JobId::from(id),
                updated_at,
            })
            .collect())
    }

    async fn redrive_published(
        &self,
        queue: &str,
        lost: &[LostJob],
    ) -> Result<Vec<JobId>, StoreError> {
        if lost.is_empty() {
            return Ok(Vec::new());
        }
        let pool = &self.pool;
        let ids: Vec<Uuid> = lost.iter().map(|l| l.id.as_uuid()).collect();
        let changed: Vec<EpochMs> = lost.iter().map(|l| l.updated_at).collect();
        let (ids, changed) = (&ids, &changed);
        let ids: Vec<Uuid> = self
            .run("redrive published", move || async move {
                let mut tx = pool.begin().await?;
                let ids: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/outbox_redrive.sql"))
                    .bind(queue)
                    .bind(ids)
                    .bind(changed)
                    .bind(now_ms())
                    .fetch_all(&mut *tx)
                    .await?;
                if !ids.is_empty() {
                    sqlx::query(include_str!("sql/outbox_notify.sql"))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(ids)
            })
            .await?;
        if !ids.is_empty() {
            self.wake_relays();
        }
        Ok(ids.into_iter().map(JobId::from).collect())
    }
}
