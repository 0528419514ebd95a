//! [`IngestStore`] for PostgreSQL: group commit. All requests of one call go
//! into one transaction with a few multi-row statements whatever their number
//! (idempotency keys, then jobs and outbox rows, which also `NOTIFY`). A call
//! without idempotency keys is that one statement alone, in autocommit: one
//! round trip. Nothing is answered before the commit returns.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sluice_core::{now_ms, JobId};
use sqlx::PgPool;

use super::rows::{corrupt, get, job_row, JobColumns};
use super::{split_on_failure, Fail, PgStore};
use crate::{EnqueueRequest, Enqueued, IngestStore, JobRecord, StoreError};

#[async_trait]
impl IngestStore for PgStore {
    async fn enqueue(&self, requests: Vec<EnqueueRequest>) -> Vec<Result<Enqueued, StoreError>> {
        if requests.is_empty() {
            return Vec::new();
        }
        let first = self.enqueue_batch(&requests).await;
        let reqs = &requests;
        split_on_failure(first, requests.len(), move |i| {
            self.enqueue_batch(std::slice::from_ref(&reqs[i]))
        })
        .await
    }

    async fn get_job(&self, id: JobId) -> Result<JobRecord, StoreError> {
        let pool = &self.pool;
        let row = self
            .run("get job", move || async move {
                Ok(sqlx::query(include_str!("sql/job_get.sql"))
                    .bind(id.as_uuid())
                    .fetch_optional(pool)
                    .await?)
            })
            .await?
            .ok_or(StoreError::NotFound)?;
        job_row(&row)
    }
}

impl PgStore {
    /// One transaction for all of `requests`; wakes local relays after the
    /// commit when outbox rows were added.
    async fn enqueue_batch(
        &self,
        requests: &[EnqueueRequest],
    ) -> Result<Vec<Result<Enqueued, StoreError>>, StoreError> {
        let pool = &self.pool;
        let (results, added) = self
            .run("enqueue", move || enqueue_tx(pool, requests))
            .await?;
        if added {
            self.wake_relays();
        }
        Ok(results)
    }
}

/// Groups request indexes so that no two requests of a group share an
/// idempotency key: a later request with the key of an earlier one must see
/// its effect, so it goes into a later group of the same transaction.
fn rounds(requests: &[EnqueueRequest]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut last: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, req) in requests.iter().enumerate() {
        let round = match &req.idempotency {
            Some(idem) => {
                let k = (idem.scope.as_str(), idem.key.as_str());
                let r = last.get(&k).map_or(0, |r| r + 1);
                last.insert(k, r);
                r
            }
            None => 0,
        };
        if rounds.len() <= round {
            rounds.resize_with(round + 1, Vec::new);
        }
        rounds[round].push(i);
    }
    rounds
}

/// The stored answer of an idempotency key.
fn replayed(ids_json: &str) -> Result<Enqueued, StoreError> {
    let ids: Vec<JobId> =
        serde_json::from_str(ids_json).map_err(|e| corrupt("idempotency job ids", e))?;
    Ok(Enqueued {
        ids,
        replayed: true,
    })
}

async fn enqueue_tx(
    pool: &PgPool,
    requests: &[EnqueueRequest],
) -> Result<(Vec<Result<Enqueued, StoreError>>, bool), Fail> {
    let now = now_ms();
    if requests.iter().all(|r| r.idempotency.is_none()) {
        let all: Vec<usize> = (0..requests.len()).collect();
        let added = insert_jobs(pool, requests, &all, now).await?;
        let results = requests.iter().map(|r| Ok(fresh(r))).collect();
        return Ok((results, added > 0));
    }
    let mut results: Vec<Option<Result<Enqueued, StoreError>>> =
        requests.iter().map(|_| None).collect();
    let mut added = 0i64;
    let mut tx = pool.begin().await?;
    for round in rounds(requests) {
        let mut accepted: Vec<usize> = Vec::with_capacity(round.len());
        let mut keyed: Vec<usize> = Vec::new();
        for &i in &round {
            if requests[i].idempotency.is_some() {
                keyed.push(i);
            } else {
                accepted.push(i);
            }
        }
        if !keyed.is_empty() {
            let (mut scopes, mut keys, mut fingerprints, mut ids) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for &i in &keyed {
                let idem = requests[i].idempotency.as_ref().expect("keyed");
                scopes.push(idem.scope.as_str());
                keys.push(idem.key.as_str());
                fingerprints.push(idem.fingerprint.as_str());
                let job_ids: Vec<JobId> = requests[i].jobs.iter().map(|j| j.id).collect();
                ids.push(serde_json::to_string(&job_ids).map_err(|e| corrupt("job ids", e))?);
            }
            let inserted = sqlx::query(include_str!("sql/idempotency_insert.sql"))
                .bind(&scopes)
                .bind(&keys)
                .bind(&fingerprints)
                .bind(&ids)
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
            let mut fresh: HashSet<(String, String)> = HashSet::with_capacity(inserted.len());
            for row in &inserted {
                fresh.insert((get(row, "scope")?, get(row, "key")?));
            }
            // Keys already taken (by an earlier request, or one committed
            // while this transaction waited on it) answer as stored.
            let mut taken: Vec<usize> = Vec::new();
            for &i in &keyed {
                let idem = requests[i].idempotency.as_ref().expect("keyed");
                if fresh.contains(&(idem.scope.clone(), idem.key.clone())) {
                    accepted.push(i);
                } else {
                    taken.push(i);
                }
            }
            if !taken.is_empty() {
                let (scopes, keys): (Vec<&str>, Vec<&str>) = taken
                    .iter()
                    .map(|&i| {
                        let idem = requests[i].idempotency.as_ref().expect("keyed");
                        (idem.scope.as_str(), idem.key.as_str())
                    })
                    .unzip();
                let rows = sqlx::query(include_str!("sql/idempotency_get.sql"))
                    .bind(&scopes)
                    .bind(&keys)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut stored: HashMap<(String, String), (String, String)> = HashMap::new();
                for row in &rows {
                    stored.insert(
                        (get(row, "scope")?, get(row, "key")?),
                        (get(row, "fingerprint")?, get(row, "job_ids")?),
                    );
                }
                for i in taken {
                    let idem = requests[i].idempotency.as_ref().expect("keyed");
                    results[i] = Some(match stored.get(&(idem.scope.clone(), idem.key.clone())) {
                        Some((fingerprint, ids)) if *fingerprint == idem.fingerprint => {
                            replayed(ids)
                        }
                        Some(_) => Err(StoreError::IdempotencyConflict),
                        None => Err(StoreError::Unavailable(
                            "idempotency key changed concurrently".into(),
                        )),
                    });
                }
            }
        }
        accepted.sort_unstable();
        added += insert_jobs(&mut *tx, requests, &accepted, now).await?;
        for i in accepted {
            results[i] = Some(Ok(fresh(&requests[i])));
        }
    }
    tx.commit().await?;
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Corrupt("request left unanswered".into()))))
        .collect();
    Ok((results, added > 0))
}

/// The answer to a request whose jobs were inserted.
fn fresh(request: &EnqueueRequest) -> Enqueued {
    Enqueued {
        ids: request.jobs.iter().map(|j| j.id).collect(),
        replayed: false,
    }
}

/// Inserts the jobs of `requests[i]` for each `i` of `accepted` (in that
/// order), each with its first outbox row, in one statement that also
/// notifies relays; returns how many outbox rows it added.
async fn insert_jobs<'c, E>(
    executor: E,
    requests: &[EnqueueRequest],
    accepted: &[usize],
    now: i64,
) -> Result<i64, Fail>
where
    E: sqlx::PgExecutor<'c>,
{
    let mut cols = JobColumns::default();
    for &i in accepted {
        for job in &requests[i].jobs {
            cols.push(job.id, job)?;
        }
    }
    if cols.is_empty() {
        return Ok(0);
    }
    let n: i64 = cols
        .bind(sqlx::query_scalar(include_str!("sql/job_insert.sql")))
        .bind(&cols.available_at)
        .bind(now)
        .fetch_one(executor)
        .await?;
    if usize::try_from(n).ok() != Some(cols.ids.len()) {
        return Err(corrupt(
            "enqueue",
            format!("{n} outbox rows for {} jobs", cols.ids.len()),
        )
        .into());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Idempotency;

    fn req(key: Option<&str>) -> EnqueueRequest {
        EnqueueRequest {
            jobs: Vec::new(),
            idempotency: key.map(|k| Idempotency {
                scope: "q".into(),
                key: k.into(),
                fingerprint: "f".into(),
            }),
        }
    }

    #[test]
    fn repeated_keys_go_to_later_rounds() {
        let reqs = [
            req(Some("a")),
            req(None),
            req(Some("a")),
            req(Some("b")),
            req(Some("a")),
        ];
        assert_eq!(rounds(&reqs), vec![vec![0, 1, 3], vec![2], vec![4]]);
        assert_eq!(rounds(&[req(None), req(None)]), vec![vec![0, 1]]);
    }
}
