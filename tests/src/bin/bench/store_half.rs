//! The store's half of the relay and of the worker alone, with no broker:
//! claiming due outbox rows and marking them published in relay-sized
//! batches; starting attempts and recording their success in batches as a
//! worker's window holds them. The relay and the worker do this work and
//! talk to the broker too, on the same machine, so neither goes faster than
//! the best of these rates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sluice_core::now_ms;
use sluice_store::postgres::PgStore;
use sluice_store::{AttemptStore, Completion, OutboxStore, Outcome, StartOutcome, StartRequest};
use sqlx::{Executor, PgPool};

/// Rows (or jobs) per second of `loops` concurrent loops.
pub struct Drained {
    pub loops: usize,
    pub per_second: f64,
}

/// Keeps a copy of the outbox of the database behind `pool` (the backlog,
/// before the relay drains it) for [`relay`].
pub async fn keep_outbox(pool: &PgPool) -> anyhow::Result<()> {
    pool.execute("CREATE TABLE bench_outbox_snapshot AS SELECT * FROM outbox")
        .await?;
    Ok(())
}

/// Once per entry of `loops`: puts the outbox kept by [`keep_outbox`] back
/// (same row ids, the table vacuumed) and drains it with that many
/// concurrent loops claiming `batch` rows at a time and marking them. The
/// outbox is left drained, as the relay left it, and the copy dropped.
pub async fn relay(
    url: &str,
    pool: &PgPool,
    batch: usize,
    loops: &[usize],
) -> anyhow::Result<Vec<Drained>> {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_outbox_snapshot")
        .fetch_one(pool)
        .await?;
    let store = Arc::new(PgStore::open(url).await.context("open the store")?);
    let mut out = Vec::new();
    for &n in loops {
        pool.execute(
            "INSERT INTO outbox OVERRIDING SYSTEM VALUE SELECT * FROM bench_outbox_snapshot",
        )
        .await?;
        pool.execute("VACUUM ANALYZE outbox").await?;
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let store = store.clone();
            tasks.spawn(async move {
                let mut marked = 0usize;
                loop {
                    let claim = store.claim_outbox(batch, Duration::from_secs(60)).await?;
                    if claim.rows.is_empty() {
                        return Ok::<_, anyhow::Error>(marked);
                    }
                    let ids: Vec<i64> = claim.rows.iter().map(|r| r.row_id).collect();
                    marked += store.mark_published(&claim.lease, &ids).await?;
                }
            });
        }
        let mut marked = 0;
        while let Some(r) = tasks.join_next().await {
            marked += r??;
        }
        let secs = t0.elapsed().as_secs_f64();
        if marked as i64 != rows {
            bail!("{n} claim loops marked {marked} of {rows} rows");
        }
        out.push(Drained {
            loops: n,
            per_second: rows as f64 / secs,
        });
    }
    store.close().await;
    pool.execute("DROP TABLE bench_outbox_snapshot").await?;
    pool.execute("VACUUM ANALYZE outbox").await?;
    Ok(out)
}

/// Starts attempt 1 of every job of `queue` (each published, none started)
/// and records its success, `batch` jobs a call, once per entry of `loops`
/// with that many concurrent loops. Each run starts from the jobs put back
/// as the relay left them (published, no attempt), the table vacuumed; the
/// jobs are left succeeded.
pub async fn worker(
    url: &str,
    pool: &PgPool,
    queue: &str,
    batch: usize,
    loops: &[usize],
) -> anyhow::Result<Vec<Drained>> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM jobs WHERE queue = $1 ORDER BY id")
            .bind(queue)
            .fetch_all(pool)
            .await?;
    let chunks: Arc<Vec<Vec<uuid::Uuid>>> =
        Arc::new(ids.chunks(batch.max(1)).map(<[_]>::to_vec).collect());
    let store = Arc::new(PgStore::open(url).await.context("open the store")?);
    let mut out = Vec::new();
    for &n in loops {
        reset(pool, queue).await?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (store, next, chunks) = (store.clone(), next.clone(), chunks.clone());
            tasks.spawn(async move {
                let mut done = 0usize;
                while let Some(chunk) =
                    chunks.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let requests = chunk
                        .iter()
                        .map(|id| StartRequest {
                            job_id: (*id).into(),
                            attempt: Some(1),
                            create: None,
                            lease: None,
                        })
                        .collect();
                    let mut completions = Vec::with_capacity(chunk.len());
                    for r in store
                        .start_attempts(requests, Duration::from_secs(60))
                        .await
                    {
                        let Ok(StartOutcome::Started(a)) = r else {
                            bail!("an attempt did not start: {r:?}");
                        };
                        completions.push(Completion {
                            job_id: a.job.id,
                            lease: a.lease,
                            attempt: a.attempt,
                            started_at: now_ms(),
                            outcome: Outcome::Succeeded,
                        });
                    }
                    for r in store.finish_attempts(completions).await {
                        r?;
                        done += 1;
                    }
                }
                Ok::<_, anyhow::Error>(done)
            });
        }
        let mut done = 0;
        while let Some(r) = tasks.join_next().await {
            done += r??;
        }
        let secs = t0.elapsed().as_secs_f64();
        if done != ids.len() {
            bail!("{n} loops recorded {done} of {} jobs", ids.len());
        }
        out.push(Drained {
            loops: n,
            per_second: done as f64 / secs,
        });
    }
    store.close().await;
    Ok(out)
}

/// Every job of `queue` back to published with no attempt, due since it
/// was created, as the relay left it; the table vacuumed.
async fn reset(pool: &PgPool, queue: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'pending', attempts = 0, lease_token = NULL, lease_until = NULL, \
         attempt_started_at = NULL, updated_at = created_at, due_at = created_at WHERE queue = $1",
    )
    .bind(queue)
    .execute(pool)
    .await?;
    pool.execute("VACUUM ANALYZE jobs").await?;
    Ok(())
}
