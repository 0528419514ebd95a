//! [`AdminStore`] for PostgreSQL: pause state, dead letters, replays and the
//! audit log; the replays themselves are in `replay.rs`.

use async_trait::async_trait;
use serde_json::Value;
use sluice_core::{now_ms, JobId};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use uuid::Uuid;

use super::replay::replay_snapshot_tx;
use super::rows::{corrupt, get, job_id, json, pg_text, to_u32};
use super::{Fail, PgStore};
use crate::{
    AdminStore, AttemptRecord, AuditEntry, DeadLetter, DeadLetterCursor, DeadLetterDetail,
    DeadLetterFilter, NewReplay, ReplayRecord, ReplaySkip, StoreError,
};

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|e| corrupt(what, e))
}

fn json_text(v: &Value, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt(what, e))
}

/// The bind values of a [`DeadLetterFilter`]: queue, error substring, ids.
fn filter_binds(filter: &DeadLetterFilter) -> (Option<&str>, Option<&str>, Option<Vec<Uuid>>) {
    (
        filter.queue.as_deref(),
        filter.error_contains.as_deref(),
        filter
            .ids
            .as_ref()
            .map(|ids| ids.iter().map(JobId::as_uuid).collect()),
    )
}

fn dead_letter(row: &PgRow) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: job_id(row, "job_id")?,
        queue: get(row, "queue")?,
        payload: json(row, "payload")?,
        attempts: to_u32(get(row, "attempts")?, "attempts")?,
        last_error: get(row, "error")?,
        died_at: get(row, "died_at")?,
        replay_count: to_u32(get(row, "replay_count")?, "replay_count")?,
    })
}

fn attempt_record(row: &PgRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        replay_count: to_u32(get(row, "replay_count")?, "replay_count")?,
        attempt: to_u32(get(row, "attempt")?, "attempt")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        outcome: get(row, "outcome")?,
        error: get(row, "error")?,
    })
}

fn replay_record(row: &PgRow) -> Result<ReplayRecord, StoreError> {
    Ok(ReplayRecord {
        id: get(row, "id")?,
        request: json(row, "request")?,
        status: get(row, "status")?,
        matched: to_u64(get(row, "matched")?, "matched")?,
        replayed: to_u64(get(row, "replayed")?, "replayed")?,
        skipped: to_u64(get(row, "skipped")?, "skipped")?,
        rate_per_second: get(row, "rate_per_second")?,
        max_replays: to_u32(get(row, "max_replays")?, "max_replays")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        finished_at: get(row, "finished_at")?,
        position: to_u64(get(row, "position")?, "position")?,
    })
}

fn audit_entry(row: &PgRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        at: get(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target: get(row, "target")?,
        count: to_u64(get(row, "count")?, "audit count")?,
        detail: json(row, "detail")?,
    })
}

async fn fetch_replay(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
) -> Result<Option<ReplayRecord>, Fail> {
    let row = sqlx::query(include_str!("sql/replay_get.sql"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(replay_record).transpose()?)
}

async fn create_replay_tx(
    pool: &PgPool,
    replay: &NewReplay,
    request: &str,
) -> Result<(ReplayRecord, bool), Fail> {
    let now = now_ms();
    let mut tx = pool.begin().await?;
    if let Some(idem) = &replay.idempotency {
        let ids = serde_json::to_string(&[replay.id]).map_err(|e| corrupt("replay id", e))?;
        let inserted = sqlx::query(include_str!("sql/idempotency_insert.sql"))
            .bind([idem.scope.as_str()])
            .bind([idem.key.as_str()])
            .bind([idem.fingerprint.as_str()])
            .bind([ids.as_str()])
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        if inserted.is_empty() {
            // Taken: by an earlier replay, or one committed while this
            // transaction waited on the key.
            let row = sqlx::query(include_str!("sql/idempotency_get.sql"))
                .bind([idem.scope.as_str()])
                .bind([idem.key.as_str()])
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    StoreError::Unavailable("idempotency key changed concurrently".into())
                })?;
            let fingerprint: String = get(&row, "fingerprint")?;
            if fingerprint != idem.fingerprint {
                return Err(StoreError::IdempotencyConflict.into());
            }
            let earlier: Vec<Uuid> = json(&row, "job_ids")?;
            let earlier = *earlier
                .first()
                .ok_or_else(|| corrupt("idempotency", "the key names no replay"))?;
            let record = fetch_replay(&mut tx, earlier).await?.ok_or_else(|| {
                corrupt(
                    "idempotency",
                    format!("the key names missing replay {earlier}"),
                )
            })?;
            tx.rollback().await?;
            return Ok((record, false));
        }
    }
    let row = sqlx::query(include_str!("sql/replay_insert.sql"))
        .bind(replay.id)
        .bind(request)
        .bind(pg_text(&replay.actor))
        .bind(to_i64(u64::try_from(replay.ids.len()).unwrap_or(u64::MAX)))
        .bind(replay.rate_per_second)
        .bind(i64::from(replay.max_replays))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    let record = replay_record(&row)?;
    let snapshot: Vec<Uuid> = replay.ids.iter().map(JobId::as_uuid).collect();
    sqlx::query(include_str!("sql/replay_ids_insert.sql"))
        .bind(replay.id)
        .bind(&snapshot)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((record, true))
}

#[async_trait]
impl AdminStore for PgStore {
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        let pool = &self.pool;
        self.run("set paused", move || async move {
            sqlx::query(include_str!("sql/queue_pause_set.sql"))
                .bind(queue)
                .bind(paused)
                .bind(now_ms())
                .execute(pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn paused_queues(&self) -> Result<Vec<String>, StoreError> {
        let pool = &self.pool;
        self.run("paused queues", move || async move {
            Ok(
                sqlx::query_scalar(include_str!("sql/queue_paused_list.sql"))
                    .fetch_all(pool)
                    .await?,
            )
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        after: Option<DeadLetterCursor>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pool = &self.pool;
        let binds = &filter_binds(filter);
        let rows = self
            .run("list dead letters", move || async move {
                let (queue, error, ids) = binds;
                Ok(sqlx::query(include_str!("sql/dead_letter_list.sql"))
                    .bind(queue)
                    .bind(error)
                    .bind(ids)
                    .bind(after.map(|c| c.died_at))
                    .bind(after.map(|c| c.id.as_uuid()))
                    .bind(limit_i64(limit))
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        rows.iter().map(dead_letter).collect()
    }

    async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        let pool = &self.pool;
        let binds = &filter_binds(filter);
        let n: i64 = self
            .run("count dead letters", move || async move {
                let (queue, error, ids) = binds;
                Ok(
                    sqlx::query_scalar(include_str!("sql/dead_letter_count.sql"))
                        .bind(queue)
                        .bind(error)
                        .bind(ids)
                        .fetch_one(pool)
                        .await?,
                )
            })
            .await?;
        to_u64(n, "count")
    }

    async fn get_dead_letter(&self, id: JobId) -> Result<DeadLetterDetail, StoreError> {
        let pool = &self.pool;
        let (row, history) = self
            .run("get dead letter", move || async move {
                // One snapshot: the dead letter and its history agree.
                let mut tx = pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?;
                let row = sqlx::query(include_str!("sql/dead_letter_get.sql"))
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                let history = sqlx::query(include_str!("sql/attempt_history.sql"))
                    .bind(id.as_uuid())
                    .fetch_all(&mut *tx)
                    .await?;
                tx.rollback().await?;
                Ok((row, history))
            })
            .await?;
        Ok(DeadLetterDetail {
            dead_letter: dead_letter(&row)?,
            key: get(&row, "key")?,
            max_attempts: to_u32(get(&row, "max_attempts")?, "max_attempts")?,
            created_at: get(&row, "created_at")?,
            history: history
                .iter()
                .map(attempt_record)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn delete_dead_letter(&self, id: JobId) -> Result<(), StoreError> {
        let pool = &self.pool;
        let n: i64 = self
            .run("delete dead letter", move || async move {
                Ok(
                    sqlx::query_scalar(include_str!("sql/dead_letter_delete.sql"))
                        .bind(id.as_uuid())
                        .fetch_one(pool)
                        .await?,
                )
            })
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn replay_from_snapshot(
        &self,
        replay: Uuid,
        from: u64,
        limit: usize,
        max_replays: u32,
    ) -> Result<Vec<(JobId, Result<(), ReplaySkip>)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pool = &self.pool;
        let results = self
            .run("replay from snapshot", move || {
                replay_snapshot_tx(pool, replay, from, limit, max_replays)
            })
            .await?;
        if results.iter().any(|(_, r)| r.is_ok()) {
            self.wake_relays();
        }
        Ok(results)
    }

    async fn create_replay(&self, replay: NewReplay) -> Result<(ReplayRecord, bool), StoreError> {
        let request = json_text(&replay.request, "replay request")?;
        let pool = &self.pool;
        let (replay, request) = (&replay, request.as_str());
        self.run("create replay", move || {
            create_replay_tx(pool, replay, request)
        })
        .await
    }

    async fn update_replay(
        &self,
        id: Uuid,
        position: u64,
        status: Option<&str>,
    ) -> Result<ReplayRecord, StoreError> {
        let pool = &self.pool;
        let row = self
            .run("update replay", move || async move {
                Ok(sqlx::query(include_str!("sql/replay_update.sql"))
                    .bind(to_i64(position))
                    .bind(status)
                    .bind(now_ms())
                    .bind(id)
                    .fetch_optional(pool)
                    .await?)
            })
            .await?
            .ok_or(StoreError::NotFound)?;
        replay_record(&row)
    }

    async fn get_replay(&self, id: Uuid) -> Result<ReplayRecord, StoreError> {
        let pool = &self.pool;
        let row = self
            .run("get replay", move || async move {
                Ok(sqlx::query(include_str!("sql/replay_get.sql"))
                    .bind(id)
                    .fetch_optional(pool)
                    .await?)
            })
            .await?
            .ok_or(StoreError::NotFound)?;
        replay_record(&row)
    }

    async fn stale_replays(&self, stale_ms: i64) -> Result<Vec<ReplayRecord>, StoreError> {
        let pool = &self.pool;
        let rows = self
            .run("stale replays", move || async move {
                Ok(sqlx::query(include_str!("sql/replay_stale.sql"))
                    .bind(now_ms().saturating_sub(stale_ms))
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        rows.iter().map(replay_record).collect()
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let detail = json_text(&entry.detail, "audit detail")?;
        let pool = &self.pool;
        let (entry, detail) = (&entry, detail.as_str());
        self.run("record audit", move || async move {
            sqlx::query(include_str!("sql/audit_insert.sql"))
                .bind(entry.at)
                .bind(pg_text(&entry.actor))
                .bind(pg_text(&entry.action))
                .bind(pg_text(&entry.target))
                .bind(to_i64(entry.count))
                .bind(detail)
                .execute(pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pool = &self.pool;
        let rows = self
            .run("list audit", move || async move {
                Ok(sqlx::query(include_str!("sql/audit_list.sql"))
                    .bind(limit_i64(limit))
                    .fetch_all(pool)
                    .await?)
            })
            .await?;
        rows.iter().map(audit_entry).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_binds_pass_every_field() {
        let id = JobId::new();
        let filter = DeadLetterFilter {
            queue: Some("q".into()),
            error_contains: Some("x".into()),
            ids: Some(vec![id]),
        };
        let (q, e, ids) = filter_binds(&filter);
        assert_eq!(
            (q, e, ids),
            (Some("q"), Some("x"), Some(vec![id.as_uuid()]))
        );
        assert_eq!(
            filter_binds(&DeadLetterFilter::default()),
            (None, None, None)
        );
    }
}
