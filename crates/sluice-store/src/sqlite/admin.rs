//! [`AdminStore`] for SQLite: pause state, dead letters, replays and the
//! audit log. Writes go through the one writer connection (`BEGIN
//! IMMEDIATE`); reads use the reader pool.

use async_trait::async_trait;
use serde_json::Value;
use sluice_core::{now_ms, EpochMs, JobId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::rows::{corrupt, job_id, json_list, to_u32};
use super::{delete_jobs, map_err, SqliteStore};
use crate::{
    replay_tally, AdminStore, AttemptRecord, AuditEntry, DeadLetter, DeadLetterCursor,
    DeadLetterDetail, DeadLetterFilter, NewReplay, ReplayRecord, ReplaySkip, StoreError,
};

/// A count or position as SQLite stores it.
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

fn json_value(s: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

/// The bind values of a [`DeadLetterFilter`]: queue, error substring, ids.
fn filter_binds(filter: &DeadLetterFilter) -> (Option<&str>, Option<&str>, Option<String>) {
    let ids = filter.ids.as_ref().map(|ids| {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        json_list(&ids)
    });
    (
        filter.queue.as_deref(),
        filter.error_contains.as_deref(),
        ids,
    )
}

fn dead_letter(row: &SqliteRow) -> Result<DeadLetter, StoreError> {
    let id: String = row.try_get("job_id").map_err(map_err)?;
    let payload: String = row.try_get("payload").map_err(map_err)?;
    Ok(DeadLetter {
        id: job_id(&id)?,
        queue: row.try_get("queue").map_err(map_err)?,
        payload: json_value(&payload, "payload")?,
        attempts: to_u32(row.try_get("attempts").map_err(map_err)?, "attempts")?,
        last_error: row.try_get("error").map_err(map_err)?,
        died_at: row.try_get("died_at").map_err(map_err)?,
        replay_count: to_u32(
            row.try_get("replay_count").map_err(map_err)?,
            "replay_count",
        )?,
    })
}

fn attempt_record(row: &SqliteRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        replay_count: to_u32(
            row.try_get("replay_count").map_err(map_err)?,
            "replay_count",
        )?,
        attempt: to_u32(row.try_get("attempt").map_err(map_err)?, "attempt")?,
        started_at: row.try_get("started_at").map_err(map_err)?,
        finished_at: row.try_get("finished_at").map_err(map_err)?,
        outcome: row.try_get("outcome").map_err(map_err)?,
        error: row.try_get("error").map_err(map_err)?,
    })
}

fn replay_record(row: &SqliteRow) -> Result<ReplayRecord, StoreError> {
    let id: String = row.try_get("id").map_err(map_err)?;
    let request: String = row.try_get("request").map_err(map_err)?;
    Ok(ReplayRecord {
        id: id.parse().map_err(|e| corrupt("replay id", e))?,
        request: json_value(&request, "replay request")?,
        status: row.try_get("status").map_err(map_err)?,
        matched: to_u64(row.try_get("matched").map_err(map_err)?, "matched")?,
        replayed: to_u64(row.try_get("replayed").map_err(map_err)?, "replayed")?,
        skipped: to_u64(row.try_get("skipped").map_err(map_err)?, "skipped")?,
        rate_per_second: row.try_get("rate_per_second").map_err(map_err)?,
        max_replays: to_u32(row.try_get("max_replays").map_err(map_err)?, "max_replays")?,
        created_at: row.try_get("created_at").map_err(map_err)?,
        updated_at: row.try_get("updated_at").map_err(map_err)?,
        finished_at: row.try_get("finished_at").map_err(map_err)?,
        position: to_u64(row.try_get("position").map_err(map_err)?, "position")?,
    })
}

fn audit_entry(row: &SqliteRow) -> Result<AuditEntry, StoreError> {
    let detail: String = row.try_get("detail").map_err(map_err)?;
    Ok(AuditEntry {
        at: row.try_get("at").map_err(map_err)?,
        actor: row.try_get("actor").map_err(map_err)?,
        action: row.try_get("action").map_err(map_err)?,
        target: row.try_get("target").map_err(map_err)?,
        count: to_u64(row.try_get("count").map_err(map_err)?, "audit count")?,
        detail: json_value(&detail, "audit detail")?,
    })
}

async fn fetch_replay(
    conn: &mut SqliteConnection,
    id: uuid::Uuid,
) -> Result<Option<ReplayRecord>, StoreError> {
    let row = sqlx::query(include_str!("sql/replay_get.sql"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.as_ref().map(replay_record).transpose()
}

/// Replays one dead letter inside the caller's transaction.
async fn replay_one(
    conn: &mut SqliteConnection,
    id: JobId,
    max_replays: u32,
    now: EpochMs,
) -> Result<Result<(), ReplaySkip>, StoreError> {
    let key = id.to_string();
    let row = sqlx::query(include_str!("sql/dead_letter_replay_check.sql"))
        .bind(&key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    let Some(row) = row else {
        return Ok(Err(ReplaySkip::NotDead));
    };
    let status: String = row.try_get("status").map_err(map_err)?;
    if status != "dead" {
        return Ok(Err(ReplaySkip::NotDead));
    }
    let replay_count = to_u32(
        row.try_get("replay_count").map_err(map_err)?,
        "replay_count",
    )?;
    if replay_count >= max_replays {
        return Ok(Err(ReplaySkip::LimitReached(replay_count)));
    }
    let queue: String = row.try_get("queue").map_err(map_err)?;
    sqlx::query(include_str!("sql/dead_letter_delete.sql"))
        .bind(&key)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    let done = sqlx::query(include_str!("sql/job_replay.sql"))
        .bind(now)
        .bind(&key)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!(
            "dead letter {key} has no dead job"
        )));
    }
    super::rows::insert_outbox(&mut *conn, id, &queue, 1, now, now).await?;
    Ok(Ok(()))
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(include_str!("sql/queue_pause_set.sql"))
            .bind(queue)
            .bind(i64::from(paused))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn paused_queues(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar::<_, String>(include_str!("sql/queue_paused_list.sql"))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)
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
        let (queue, error, ids) = filter_binds(filter);
        let rows = sqlx::query(include_str!("sql/dead_letter_list.sql"))
            .bind(queue)
            .bind(error)
            .bind(ids)
            .bind(after.map(|c| c.died_at))
            .bind(after.map(|c| c.id.to_string()))
            .bind(limit_i64(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(dead_letter).collect()
    }

    async fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StoreError> {
        let (queue, error, ids) = filter_binds(filter);
        let n: i64 = sqlx::query_scalar(include_str!("sql/dead_letter_count.sql"))
            .bind(queue)
            .bind(error)
            .bind(ids)
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        to_u64(n, "count")
    }

    async fn get_dead_letter(&self, id: JobId) -> Result<DeadLetterDetail, StoreError> {
        // One read transaction: the dead letter and its history agree.
        let mut tx = self.reader.begin().await.map_err(map_err)?;
        let key = id.to_string();
        let row = sqlx::query(include_str!("sql/dead_letter_get.sql"))
            .bind(&key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let history = sqlx::query(include_str!("sql/attempt_history.sql"))
            .bind(&key)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.rollback().await.map_err(map_err)?;
        Ok(DeadLetterDetail {
            dead_letter: dead_letter(&row)?,
            key: row.try_get("key").map_err(map_err)?,
            max_attempts: to_u32(
                row.try_get("max_attempts").map_err(map_err)?,
                "max_attempts",
            )?,
            created_at: row.try_get("created_at").map_err(map_err)?,
            history: history
                .iter()
                .map(attempt_record)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn delete_dead_letter(&self, id: JobId) -> Result<(), StoreError> {
        let key = id.to_string();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(include_str!("sql/dead_letter_delete.sql"))
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            tx.rollback().await.map_err(map_err)?;
            return Err(StoreError::NotFound);
        }
        delete_jobs(&mut tx, &json_list(&[key])).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn replay_from_snapshot(
        &self,
        replay: uuid::Uuid,
        from: u64,
        limit: usize,
        max_replays: u32,
    ) -> Result<Vec<(JobId, Result<(), ReplaySkip>)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (replay, from) = (replay.to_string(), to_i64(from));
        let end = from.saturating_add(limit_i64(limit));
        // one writer transaction: no other call reads the range meanwhile
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(include_str!("sql/replay_ids_take.sql"))
            .bind(&replay)
            .bind(from)
            .bind(end)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(include_str!("sql/replay_ids_mark.sql"))
            .bind(&replay)
            .bind(from)
            .bind(end)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let now = now_ms();
        let mut results = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = job_id(&row.try_get::<String, _>("job_id").map_err(map_err)?)?;
            let taken: bool = row.try_get("taken").map_err(map_err)?;
            let result = match taken {
                true => Err(ReplaySkip::Taken),
                false => replay_one(&mut tx, id, max_replays, now).await?,
            };
            results.push((id, result));
        }
        let (replayed, skipped) = replay_tally(&results);
        let reached = from.saturating_add(limit_i64(results.len()));
        sqlx::query(include_str!("sql/replay_progress.sql"))
            .bind(&replay)
            .bind(reached)
            .bind(to_i64(replayed))
            .bind(to_i64(skipped))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        if results.iter().any(|(_, r)| r.is_ok()) {
            self.wake_relays();
        }
        Ok(results)
    }

    async fn create_replay(&self, replay: NewReplay) -> Result<(ReplayRecord, bool), StoreError> {
        let request = json_text(&replay.request, "replay request")?;
        let snapshot: Vec<String> = replay.ids.iter().map(ToString::to_string).collect();
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        if let Some(idem) = &replay.idempotency {
            let seen = sqlx::query(include_str!("sql/idempotency_get.sql"))
                .bind(&idem.scope)
                .bind(&idem.key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if let Some(row) = seen {
                let fingerprint: String = row.try_get("fingerprint").map_err(map_err)?;
                if fingerprint != idem.fingerprint {
                    return Err(StoreError::IdempotencyConflict);
                }
                let ids: String = row.try_get("job_ids").map_err(map_err)?;
                let ids: Vec<String> =
                    serde_json::from_str(&ids).map_err(|e| corrupt("idempotency replay id", e))?;
                let earlier = ids
                    .first()
                    .ok_or_else(|| StoreError::Corrupt("idempotency row names no replay".into()))?
                    .parse::<uuid::Uuid>()
                    .map_err(|e| corrupt("idempotency replay id", e))?;
                let record = fetch_replay(&mut tx, earlier).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("idempotency names missing replay {earlier}"))
                })?;
                tx.rollback().await.map_err(map_err)?;
                return Ok((record, false));
            }
            sqlx::query(include_str!("sql/idempotency_insert.sql"))
                .bind(&idem.scope)
                .bind(&idem.key)
                .bind(&idem.fingerprint)
                .bind(json_list(&[replay.id.to_string()]))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        sqlx::query(include_str!("sql/replay_insert.sql"))
            .bind(replay.id.to_string())
            .bind(request)
            .bind(&replay.actor)
            .bind(to_i64(u64::try_from(replay.ids.len()).unwrap_or(u64::MAX)))
            .bind(replay.rate_per_second)
            .bind(i64::from(replay.max_replays))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(include_str!("sql/replay_ids_insert.sql"))
            .bind(replay.id.to_string())
            .bind(json_list(&snapshot))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let record = fetch_replay(&mut tx, replay.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("inserted replay not found".into()))?;
        tx.commit().await.map_err(map_err)?;
        Ok((record, true))
    }

    async fn update_replay(
        &self,
        id: uuid::Uuid,
        position: u64,
        status: Option<&str>,
    ) -> Result<ReplayRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(include_str!("sql/replay_update.sql"))
            .bind(to_i64(position))
            .bind(status)
            .bind(now_ms())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        let record = replay_record(&row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(record)
    }

    async fn get_replay(&self, id: uuid::Uuid) -> Result<ReplayRecord, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(map_err)?;
        fetch_replay(&mut conn, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn stale_replays(&self, stale_ms: i64) -> Result<Vec<ReplayRecord>, StoreError> {
        let rows = sqlx::query(include_str!("sql/replay_stale.sql"))
            .bind(now_ms().saturating_sub(stale_ms))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(replay_record).collect()
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let detail = json_text(&entry.detail, "audit detail")?;
        let mut tx = self.begin_write().await?;
        sqlx::query(include_str!("sql/audit_insert.sql"))
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(to_i64(entry.count))
            .bind(detail)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(include_str!("sql/audit_list.sql"))
            .bind(limit_i64(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?;
        rows.iter().map(audit_entry).collect()
    }
}
