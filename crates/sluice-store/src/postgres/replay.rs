//! Replays of dead letters on PostgreSQL: a range of a replay's snapshot,
//! taken entry by entry in the transaction that replays it, in a few
//! statements whatever its size, with one `NOTIFY`.

use std::collections::HashMap;

use sluice_core::{now_ms, JobId};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::rows::{corrupt, get, job_id, to_u32};
use super::Fail;
use crate::{replay_tally, ReplaySkip};

/// [`crate::AdminStore::replay_from_snapshot`] in one transaction: the
/// range's entries are locked, those not taken yet are marked taken and
/// replayed, the replay's progress records them, and all of it commits
/// together. A concurrent call over the
/// same entries waits for the lock and then finds them taken.
pub(super) async fn replay_snapshot_tx(
    pool: &PgPool,
    replay: Uuid,
    from: u64,
    limit: usize,
    max_replays: u32,
) -> Result<Vec<(JobId, Result<(), ReplaySkip>)>, Fail> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let end = from.saturating_add(i64::try_from(limit).unwrap_or(i64::MAX));
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(include_str!("sql/replay_ids_take.sql"))
        .bind(replay)
        .bind(from)
        .bind(end)
        .fetch_all(&mut *tx)
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut fresh = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = job_id(row, "job_id")?;
        let taken: bool = get(row, "taken")?;
        if !taken {
            fresh.push(id);
        }
        entries.push((id, taken));
    }
    let mut replayed = replay_in(&mut tx, &fresh, max_replays).await?.into_iter();
    let mut results = Vec::with_capacity(entries.len());
    for (id, taken) in entries {
        let result = match taken {
            true => Err(ReplaySkip::Taken),
            false => replayed
                .next()
                .ok_or_else(|| corrupt("replay", "an entry without a result"))?,
        };
        results.push((id, result));
    }
    let (replayed, skipped) = replay_tally(&results);
    let reached = from.saturating_add(i64::try_from(results.len()).unwrap_or(i64::MAX));
    sqlx::query(include_str!("sql/replay_progress.sql"))
        .bind(replay)
        .bind(reached)
        .bind(i64::try_from(replayed).unwrap_or(i64::MAX))
        .bind(i64::try_from(skipped).unwrap_or(i64::MAX))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(results)
}

/// Replays `ids` inside the caller's transaction `tx`, in order; see
/// [`crate::AdminStore::replay_from_snapshot`].
async fn replay_in(
    tx: &mut PgConnection,
    ids: &[JobId],
    max_replays: u32,
) -> Result<Vec<Result<(), ReplaySkip>>, Fail> {
    let now = now_ms();
    let mut lock: Vec<Uuid> = ids.iter().map(JobId::as_uuid).collect();
    lock.sort_unstable();
    lock.dedup();
    let rows = sqlx::query(include_str!("sql/dead_letter_replay_lock.sql"))
        .bind(&lock)
        .fetch_all(&mut *tx)
        .await?;
    // job id -> (queue, replay count) of jobs that are dead letters now.
    let mut dead: HashMap<JobId, (String, u32)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let status: String = get(row, "status")?;
        if status == "dead" {
            dead.insert(
                job_id(row, "job_id")?,
                (
                    get(row, "queue")?,
                    to_u32(get(row, "replay_count")?, "replay_count")?,
                ),
            );
        }
    }
    // In order, as if one by one: a job replayed earlier in the list is no
    // longer dead for the entries after it.
    let mut results = Vec::with_capacity(ids.len());
    let (mut replay, mut queues) = (Vec::new(), Vec::new());
    for id in ids {
        match dead.get(id) {
            None => results.push(Err(ReplaySkip::NotDead)),
            Some((_, count)) if *count >= max_replays => {
                results.push(Err(ReplaySkip::LimitReached(*count)))
            }
            Some(_) => {
                let (queue, _) = dead.remove(id).expect("present");
                replay.push(id.as_uuid());
                queues.push(queue);
                results.push(Ok(()));
            }
        }
    }
    if !replay.is_empty() {
        let done: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/dead_letter_replay.sql"))
            .bind(now)
            .bind(&replay)
            .fetch_all(&mut *tx)
            .await?;
        if done.len() != replay.len() {
            return Err(corrupt(
                "replay",
                format!(
                    "{} of {} dead letters had a dead job",
                    done.len(),
                    replay.len()
                ),
            )
            .into());
        }
        let n = replay.len();
        sqlx::query(include_str!("sql/outbox_insert.sql"))
            .bind(now)
            .bind(&replay)
            .bind(&queues)
            .bind(vec![1i64; n])
            .bind(vec![now; n])
            .execute(&mut *tx)
            .await?;
        sqlx::query(include_str!("sql/outbox_notify.sql"))
            .execute(&mut *tx)
            .await?;
    }
    Ok(results)
}
