//! [`IngestStore`] for SQLite: group commit of many requests in one
//! transaction, each request in its own savepoint.

use async_trait::async_trait;
use sluice_core::{now_ms, EpochMs, JobId, JobStatus};
use sqlx::{Connection, Row, SqliteConnection};

use super::rows::{corrupt, insert_job, insert_outbox, job_id, job_row};
use super::{map_err, SqliteStore};
use crate::{EnqueueRequest, Enqueued, Idempotency, IngestStore, JobRecord, StoreError};

#[async_trait]
impl IngestStore for SqliteStore {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        if requests.is_empty() {
            return Vec::new();
        }
        match self.enqueue_tx(&requests).await {
            Ok((results, added)) => {
                if added {
                    self.wake_relays();
                }
                results
            }
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        let row = sqlx::query(include_str!("sql/job_get.sql"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        Ok(job_row(&row)?.job)
    }
}

impl SqliteStore {
    /// All requests in one transaction; returns the per-request results and
    /// whether any outbox row was added.
    async fn enqueue_tx(
        &self,
        requests: &[EnqueueRequest],
    ) -> Result<(Vec<Result<Enqueued, StoreError>>, bool), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let mut results = Vec::with_capacity(requests.len());
        let mut added = false;
        for req in requests {
            let res = enqueue_one(&mut tx, req, now).await;
            if let Ok(Enqueued {
                replayed: false,
                ids,
            }) = &res
            {
                added |= !ids.is_empty();
            }
            results.push(res);
        }
        tx.commit().await.map_err(map_err)?;
        Ok((results, added))
    }
}

/// What an idempotency key already stands for.
enum Seen {
    Replay(Vec<JobId>),
    Conflict,
}

async fn lookup(
    conn: &mut SqliteConnection,
    idem: &Idempotency,
) -> Result<Option<Seen>, StoreError> {
    let row = sqlx::query(include_str!("sql/idempotency_get.sql"))
        .bind(&idem.scope)
        .bind(&idem.key)
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    let Some(row) = row else { return Ok(None) };
    let fingerprint: String = row.try_get("fingerprint").map_err(map_err)?;
    if fingerprint != idem.fingerprint {
        return Ok(Some(Seen::Conflict));
    }
    let ids: String = row.try_get("job_ids").map_err(map_err)?;
    let ids: Vec<String> =
        serde_json::from_str(&ids).map_err(|e| corrupt("idempotency job ids", e))?;
    let ids = ids
        .iter()
        .map(|s| job_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Seen::Replay(ids)))
}

fn seen_result(seen: Seen) -> Result<Enqueued, StoreError> {
    match seen {
        Seen::Replay(ids) => Ok(Enqueued {
            ids,
            replayed: true,
        }),
        Seen::Conflict => Err(StoreError::IdempotencyConflict),
    }
}

/// One request, all or nothing (a savepoint inside the batch transaction).
async fn enqueue_one(
    conn: &mut SqliteConnection,
    req: &EnqueueRequest,
    now: EpochMs,
) -> Result<Enqueued, StoreError> {
    if let Some(idem) = &req.idempotency {
        if let Some(seen) = lookup(conn, idem).await? {
            return seen_result(seen);
        }
    }
    let mut sp = conn.begin().await.map_err(map_err)?;
    match insert_request(&mut sp, req, now).await {
        Ok(true) => {
            sp.commit().await.map_err(map_err)?;
            Ok(Enqueued {
                ids: req.jobs.iter().map(|j| j.id).collect(),
                replayed: false,
            })
        }
        Ok(false) => {
            // The key was taken between the lookup and the insert: answer
            // as the earlier request dictates.
            sp.rollback().await.map_err(map_err)?;
            let idem = req.idempotency.as_ref().expect("only keyed requests race");
            match lookup(conn, idem).await? {
                Some(seen) => seen_result(seen),
                None => Err(StoreError::Unavailable(
                    "idempotency key changed concurrently".into(),
                )),
            }
        }
        Err(e) => {
            sp.rollback().await.map_err(map_err)?;
            Err(e)
        }
    }
}

/// Inserts the idempotency key, jobs and outbox rows; false when the key
/// already exists.
async fn insert_request(
    conn: &mut SqliteConnection,
    req: &EnqueueRequest,
    now: EpochMs,
) -> Result<bool, StoreError> {
    if let Some(idem) = &req.idempotency {
        let ids: Vec<String> = req.jobs.iter().map(|j| j.id.to_string()).collect();
        let done = sqlx::query(include_str!("sql/idempotency_insert.sql"))
            .bind(&idem.scope)
            .bind(&idem.key)
            .bind(&idem.fingerprint)
            .bind(super::rows::json_list(&ids))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
    }
    for job in &req.jobs {
        insert_job(&mut *conn, job.id, job, JobStatus::Pending, now, false).await?;
        insert_outbox(&mut *conn, job.id, &job.queue, 1, job.available_at, now).await?;
    }
    Ok(true)
}
