//! [`OutboxStore`] for SQLite: claims are one `UPDATE … RETURNING` under the
//! write lock, so no two claimers (in any process) get the same row.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::value::RawValue;
use sluice_core::{now_ms, EpochMs, JobId};
use sqlx::Row;

use super::rows::{corrupt, insert_dead_letter, job_id, json_list, outbox_kind, to_u32};
use super::{map_err, millis, SqliteStore};
use crate::{LeaseToken, LostJob, OutboxClaim, OutboxRow, OutboxStore, StoreError};

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_outbox(&self, limit: usize, lease: Duration) -> Result<OutboxClaim, StoreError> {
        let token = LeaseToken::new();
        if limit == 0 {
            return Ok(OutboxClaim {
                lease: token,
                rows: Vec::new(),
            });
        }
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let claimed = sqlx::query(include_str!("sql/outbox_claim.sql"))
            .bind(&token.0)
            .bind(now.saturating_add(millis(lease)))
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        if claimed.is_empty() {
            tx.rollback().await.map_err(map_err)?;
            return Ok(OutboxClaim {
                lease: token,
                rows: Vec::new(),
            });
        }
        let mut job_ids: Vec<String> = Vec::with_capacity(claimed.len());
        for row in &claimed {
            job_ids.push(row.try_get("job_id").map_err(map_err)?);
        }
        job_ids.sort_unstable();
        job_ids.dedup();
        let jobs = sqlx::query(include_str!("sql/outbox_claim_jobs.sql"))
            .bind(json_list(&job_ids))
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;

        type JobPart = (Box<RawValue>, Option<String>, Option<String>);
        let mut by_id: HashMap<String, JobPart> = HashMap::with_capacity(jobs.len());
        for row in &jobs {
            let payload: String = row.try_get("payload").map_err(map_err)?;
            let payload = RawValue::from_string(payload).map_err(|e| corrupt("payload", e))?;
            by_id.insert(
                row.try_get("id").map_err(map_err)?,
                (
                    payload,
                    row.try_get("key").map_err(map_err)?,
                    row.try_get("traceparent").map_err(map_err)?,
                ),
            );
        }
        let mut rows = Vec::with_capacity(claimed.len());
        for row in &claimed {
            let id: String = row.try_get("job_id").map_err(map_err)?;
            let available_at: EpochMs = row.try_get("available_at").map_err(map_err)?;
            let (payload, key, traceparent) = by_id
                .get(&id)
                .cloned()
                .ok_or_else(|| corrupt("outbox row", format!("job {id} is missing")))?;
            let out = OutboxRow {
                row_id: row.try_get("row_id").map_err(map_err)?,
                job_id: job_id(&id)?,
                queue: row.try_get("queue").map_err(map_err)?,
                attempt: to_u32(row.try_get("attempt").map_err(map_err)?, "attempt")?,
                payload,
                key,
                traceparent,
                created_at: row.try_get("created_at").map_err(map_err)?,
                kind: outbox_kind(
                    row.try_get("kind").map_err(map_err)?,
                    row.try_get("error").map_err(map_err)?,
                )?,
            };
            rows.push((available_at, out));
        }
        rows.sort_by_key(|(at, r)| (*at, r.row_id));
        Ok(OutboxClaim {
            lease: token,
            rows: rows.into_iter().map(|(_, r)| r).collect(),
        })
    }

    async fn mark_published(
        &self,
        lease: &LeaseToken,
        row_ids: &[i64],
    ) -> Result<usize, StoreError> {
        if row_ids.is_empty() {
            return Ok(0);
        }
        let ids = json_list(row_ids);
        let mut tx = self.begin_write().await?;
        sqlx::query(include_str!("sql/outbox_mark_jobs.sql"))
            .bind(now_ms())
            .bind(&ids)
            .bind(&lease.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let deleted = sqlx::query(include_str!("sql/outbox_delete.sql"))
            .bind(&ids)
            .bind(&lease.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
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
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(include_str!("sql/outbox_release.sql"))
            .bind(available_at)
            .bind(json_list(row_ids))
            .bind(&lease.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        tx.commit().await.map_err(map_err)?;
        Ok(usize::try_from(released).unwrap_or(usize::MAX))
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
        let mut tx = self.begin_write().await?;
        let kept: Vec<i64> = sqlx::query_scalar(include_str!("sql/outbox_extend.sql"))
            .bind(now_ms().saturating_add(millis(lease)))
            .bind(json_list(row_ids))
            .bind(&token.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(kept)
    }

    async fn dead_letter_refused(
        &self,
        lease: &LeaseToken,
        refused: &[(i64, String)],
    ) -> Result<Vec<JobId>, StoreError> {
        if refused.is_empty() {
            return Ok(Vec::new());
        }
        let reasons: HashMap<i64, &str> = refused.iter().map(|(r, e)| (*r, e.as_str())).collect();
        let ids = json_list(&refused.iter().map(|(r, _)| *r).collect::<Vec<_>>());
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(include_str!("sql/outbox_refused_jobs.sql"))
            .bind(&ids)
            .bind(&lease.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut dead = Vec::new();
        let mut held_ids = Vec::with_capacity(held.len());
        for row in &held {
            let row_id: i64 = row.try_get("row_id").map_err(map_err)?;
            held_ids.push(row_id);
            let id: String = row.try_get("job_id").map_err(map_err)?;
            let attempt: i64 = row.try_get("attempt").map_err(map_err)?;
            let reason = reasons.get(&row_id).copied().unwrap_or_default();
            let job = sqlx::query(include_str!("sql/job_refuse.sql"))
                .bind(reason)
                .bind(now)
                .bind(&id)
                .bind(attempt)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some(job) = job else { continue };
            let queue: String = job.try_get("queue").map_err(map_err)?;
            let attempts: i64 = job.try_get("attempts").map_err(map_err)?;
            let replay_count: i64 = job.try_get("replay_count").map_err(map_err)?;
            let job_id = job_id(&id)?;
            insert_dead_letter(&mut tx, job_id, &queue, reason, attempts, replay_count, now)
                .await?;
            dead.push(job_id);
        }
        sqlx::query(include_str!("sql/outbox_delete.sql"))
            .bind(json_list(&held_ids))
            .bind(&lease.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        if !dead.is_empty() {
            self.wake_relays();
        }
        Ok(dead)
    }

    async fn next_due(&self) -> Result<Option<EpochMs>, StoreError> {
        let row = sqlx::query(include_str!("sql/outbox_next_due.sql"))
            .bind(now_ms())
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        row.try_get("due").map_err(map_err)
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
        let rows = sqlx::query(include_str!("sql/outbox_lost.sql"))
            .bind(queue)
            .bind(changed_before)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(map_err)?;
                Ok(LostJob {
                    id: job_id(&id)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn redrive_published(
        &self,
        queue: &str,
        lost: &[LostJob],
    ) -> Result<Vec<JobId>, StoreError> {
        if lost.is_empty() {
            return Ok(Vec::new());
        }
        let listed: Vec<(String, EpochMs)> = lost
            .iter()
            .map(|l| (l.id.to_string(), l.updated_at))
            .collect();
        let listed = serde_json::to_string(&listed).map_err(|e| corrupt("lost jobs", e))?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(include_str!("sql/outbox_redrive_jobs.sql"))
            .bind(queue)
            .bind(&listed)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut jobs = Vec::with_capacity(moved.len());
        for row in &moved {
            let id: String = row.try_get("id").map_err(map_err)?;
            let attempts: i64 = row.try_get("attempts").map_err(map_err)?;
            let created: EpochMs = row.try_get("created_at").map_err(map_err)?;
            sqlx::query(include_str!("sql/outbox_insert.sql"))
                .bind(&id)
                .bind(row.try_get::<String, _>("queue").map_err(map_err)?)
                .bind(attempts + 1)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            jobs.push((created, job_id(&id)?));
        }
        tx.commit().await.map_err(map_err)?;
        jobs.sort();
        if !jobs.is_empty() {
            self.wake_relays();
        }
        Ok(jobs.into_iter().map(|(_, id)| id).collect())
    }
}
