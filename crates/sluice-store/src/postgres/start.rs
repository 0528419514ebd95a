//! Starting attempts on PostgreSQL. A batch of starts of distinct, existing
//! jobs first tries the common rule, the next attempt of a job with no live
//! lease, as one `UPDATE` in autocommit ([`start_next`]). The requests it
//! leaves (and every batch that creates jobs or names one twice) take the
//! full path, one transaction ([`start_tx`]): it locks its jobs (`FOR
//! UPDATE`, in id order, so concurrent batches never deadlock on each other)
//! reading only their state, decides each request in order as if the
//! requests ran one after another, and starts the chosen attempts with the
//! same `UPDATE`; a request whose own lease token holds its job's latest
//! attempt (asked again after its answer was lost) gets that attempt back,
//! its lease extended, through `attempt_resume.sql`. The lock holds each job
//! as it was decided on until the transaction ends.

use std::collections::HashMap;

use sluice_core::{now_ms, EpochMs, JobId, JobStatus};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use uuid::Uuid;

use super::rows::{corrupt, get, job_id, job_row, to_u32, JobColumns};
use super::Fail;
use crate::start_rule::{start_rule_for, StartRule};
use crate::{ActiveAttempt, JobRecord, LeaseToken, StartOutcome, StartRequest, StoreError};

/// What a start decides on: the job's state, not its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobState {
    status: JobStatus,
    attempts: u32,
    lease_token: Option<String>,
    lease_until: Option<EpochMs>,
}

fn job_state(row: &PgRow) -> Result<(JobId, JobState), StoreError> {
    let status: String = get(row, "status")?;
    Ok((
        job_id(row, "id")?,
        JobState {
            status: status
                .parse::<JobStatus>()
                .map_err(|e| corrupt("status", e))?,
            attempts: to_u32(get(row, "attempts")?, "attempts")?,
            lease_token: get(row, "lease_token")?,
            lease_until: get(row, "lease_until")?,
        },
    ))
}

/// What one start request decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Start the attempt after `seen` attempts.
    Start { seen: u32 },
    /// Hand back the attempt the request's own lease holds.
    Resume,
    /// Answer without starting.
    Skip(Skip),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Missing,
    Stale,
    Busy(EpochMs),
}

impl From<Skip> for StartOutcome {
    fn from(s: Skip) -> Self {
        match s {
            Skip::Missing => StartOutcome::Missing,
            Skip::Stale => StartOutcome::Stale,
            Skip::Busy(until) => StartOutcome::Busy { until },
        }
    }
}

/// Decides one start request given the job as the requests before it in
/// the batch left it, by the rule both backends share.
fn decide(req: &StartRequest, current: Option<&JobState>, now: EpochMs) -> Decision {
    let Some(current) = current else {
        return Decision::Skip(Skip::Missing);
    };
    let rule = start_rule_for(
        req.attempt,
        req.lease.as_ref(),
        current.status,
        current.attempts,
        (current.lease_token.as_deref(), current.lease_until),
        now,
    );
    match rule {
        StartRule::Start => Decision::Start {
            seen: current.attempts,
        },
        StartRule::Resume => Decision::Resume,
        StartRule::Busy(until) => Decision::Skip(Skip::Busy(until)),
        StartRule::Stale => Decision::Skip(Skip::Stale),
    }
}

/// The attempts to start, one array per column of `attempt_start.sql`.
#[derive(Default)]
struct Starts {
    /// Index of the request each start answers.
    requests: Vec<usize>,
    ids: Vec<Uuid>,
    tokens: Vec<LeaseToken>,
    /// Attempts of the job when the start was decided.
    seen: Vec<i64>,
}

/// Whether [`start_next`] may take `requests`: no job to create, no job
/// named twice (a later request must see the earlier one's start).
pub(super) fn plain(requests: &[StartRequest]) -> bool {
    let mut ids = std::collections::HashSet::with_capacity(requests.len());
    requests
        .iter()
        .all(|r| r.create.is_none() && ids.insert(r.job_id))
}

/// Starts the next attempt of each job of `requests` (see [`plain`]) that
/// has seen one attempt fewer, is not finished and has no live lease, in one
/// statement; the others are left unanswered, for [`start_tx`].
pub(super) async fn start_next(
    pool: &PgPool,
    requests: &[StartRequest],
    lease_ms: i64,
) -> Result<Vec<Option<StartOutcome>>, Fail> {
    let now = now_ms();
    let lease_until = now.saturating_add(lease_ms);
    // In id order, as the full path locks, so that concurrent batches
    // usually take their row locks in one order (a deadlock is retried).
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_unstable_by_key(|&i| requests[i].job_id.as_uuid());
    let mut starts = Starts::default();
    for i in order {
        starts.requests.push(i);
        starts.ids.push(requests[i].job_id.as_uuid());
        starts
            .tokens
            .push(requests[i].lease.clone().unwrap_or_default());
        starts
            .seen
            .push(i64::from(requests[i].attempt.unwrap_or(1)) - 1);
    }
    let mut results: Vec<Option<StartOutcome>> = requests.iter().map(|_| None).collect();
    for (i, attempt) in run_starts(pool, starts, lease_until, now, false).await? {
        results[i] = attempt.map(StartOutcome::Started);
    }
    Ok(results)
}

/// Runs `attempt_start.sql` for `starts` (`attempt_resume.sql` with
/// `resume`): for each, the index of its request and the attempt it started
/// (or handed back), or `None` when its job no longer qualified.
async fn run_starts<'c, E>(
    executor: E,
    starts: Starts,
    lease_until: EpochMs,
    now: EpochMs,
    resume: bool,
) -> Result<Vec<(usize, Option<ActiveAttempt>)>, Fail>
where
    E: sqlx::PgExecutor<'c>,
{
    let tokens: Vec<&str> = starts.tokens.iter().map(|t| t.0.as_str()).collect();
    let sql = match resume {
        true => include_str!("sql/attempt_resume.sql"),
        false => include_str!("sql/attempt_start.sql"),
    };
    let rows = sqlx::query(sql)
        .bind(lease_until)
        .bind(now)
        .bind(&starts.ids)
        .bind(&tokens)
        .bind(&starts.seen)
        .fetch_all(executor)
        .await?;
    let mut started: HashMap<Uuid, JobRecord> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let job = job_row(row)?;
        started.insert(job.id.as_uuid(), job);
    }
    Ok(starts
        .requests
        .into_iter()
        .zip(starts.ids)
        .zip(starts.tokens)
        .map(|((i, id), lease)| {
            let attempt = started.remove(&id).map(|job| ActiveAttempt {
                lease,
                attempt: job.attempts,
                lease_until,
                job,
            });
            (i, attempt)
        })
        .collect())
}

/// Runs one batch of starts in one transaction.
pub(super) async fn start_tx(
    pool: &PgPool,
    requests: &[StartRequest],
    lease_ms: i64,
) -> Result<Vec<Result<StartOutcome, StoreError>>, Fail> {
    let now = now_ms();
    let lease_until = now.saturating_add(lease_ms);
    let mut tx = pool.begin().await?;

    // Jobs of direct producers: created by the first request naming them.
    let mut first_create: HashMap<JobId, usize> = HashMap::new();
    let mut cols = JobColumns::default();
    for (i, req) in requests.iter().enumerate() {
        if let Some(job) = &req.create {
            if let std::collections::hash_map::Entry::Vacant(e) = first_create.entry(req.job_id) {
                e.insert(i);
                cols.push(req.job_id, job)?;
            }
        }
    }
    // A job created by request i does not exist for the requests before i.
    let mut visible_from: HashMap<JobId, usize> = HashMap::new();
    if !cols.is_empty() {
        let created: Vec<Uuid> = cols
            .bind(sqlx::query_scalar(include_str!(
                "sql/job_insert_if_absent.sql"
            )))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        for id in created {
            let id = JobId::from(id);
            visible_from.insert(id, first_create[&id]);
        }
    }

    let mut ids: Vec<Uuid> = requests.iter().map(|r| r.job_id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query(include_str!("sql/jobs_state_lock.sql"))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    let mut jobs: HashMap<JobId, JobState> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let (id, state) = job_state(row)?;
        jobs.insert(id, state);
    }

    let mut results: Vec<Option<Result<StartOutcome, StoreError>>> =
        requests.iter().map(|_| None).collect();
    let mut starts = Starts::default();
    let mut resumes = Starts::default();
    for (i, req) in requests.iter().enumerate() {
        let visible = visible_from.get(&req.job_id).is_none_or(|&from| i >= from);
        let current = jobs.get_mut(&req.job_id).filter(|_| visible);
        match decide(req, current.as_deref(), now) {
            Decision::Skip(skip) => results[i] = Some(Ok(skip.into())),
            // the job stays as it is: later requests see its attempt held
            Decision::Resume => {
                let current = current.expect("decided on an existing job");
                resumes.requests.push(i);
                resumes.ids.push(req.job_id.as_uuid());
                resumes.seen.push(i64::from(current.attempts));
                resumes
                    .tokens
                    .push(req.lease.clone().expect("resumed by its lease"));
                current.lease_until = Some(lease_until);
            }
            Decision::Start { seen } => {
                let current = current.expect("decided on an existing job");
                let token = req.lease.clone().unwrap_or_default();
                starts.requests.push(i);
                starts.ids.push(req.job_id.as_uuid());
                starts.seen.push(i64::from(seen));
                // Later requests of the batch see the attempt in flight.
                current.attempts = seen.saturating_add(1);
                current.status = JobStatus::Published;
                current.lease_token = Some(token.0.clone());
                current.lease_until = Some(lease_until);
                starts.tokens.push(token);
            }
        }
    }

    for (batch, resume) in [(starts, false), (resumes, true)] {
        if batch.ids.is_empty() {
            continue;
        }
        for (i, attempt) in run_starts(&mut *tx, batch, lease_until, now, resume).await? {
            results[i] = Some(match attempt {
                Some(a) => Ok(StartOutcome::Started(a)),
                None => Err(StoreError::Unavailable(
                    "job changed while starting an attempt".into(),
                )),
            });
        }
    }
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(corrupt("start", "request left unanswered"))))
        .collect())
}
