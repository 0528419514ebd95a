//! Steady-state rates of the relay and the worker, read from the store's own
//! timestamps (so process start-up, connecting and group joins are left out,
//! as they are on the raw clients' side), and a light completion poll that
//! does not load the PostgreSQL server it measures.

use std::time::{Duration, Instant};

use anyhow::bail;
use sqlx::PgPool;

/// How often a phase's completion is checked (each check runs a query on
/// the server measured, so it must stay rare and light: the callers ask
/// whether any row is left, never count them all).
const POLL: Duration = Duration::from_millis(250);

/// Waits until `sql` (one `$1` parameter, the queue) counts a value for
/// which `done` holds; fails after `limit`.
pub async fn wait_count(
    pool: &PgPool,
    sql: &str,
    queue: &str,
    done: impl Fn(i64) -> bool,
    what: &str,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(sql).bind(queue).fetch_one(pool).await?;
        if done(n) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            bail!("{what} not done in {limit:?} ({n})");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A rate and the span it was measured over.
pub struct Rate {
    pub per_second: f64,
    pub seconds: f64,
}

/// The relay's rate after it drained `queue`'s backlog of `n` rows: the rows
/// marked after its first batch over the time from the first batch marked
/// to the last (marking sets the job's `updated_at`).
pub async fn relay(pool: &PgPool, queue: &str, n: usize) -> anyhow::Result<Rate> {
    let (first_ms, last_ms): (i64, i64) =
        sqlx::query_as("SELECT min(updated_at), max(updated_at) FROM jobs WHERE queue = $1")
            .bind(queue)
            .fetch_one(pool)
            .await?;
    let first_batch: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = $2 AND updated_at = $1")
            .bind(first_ms)
            .bind(queue)
            .fetch_one(pool)
            .await?;
    let seconds = ((last_ms - first_ms) as f64 / 1000.0).max(0.001);
    Ok(Rate {
        per_second: (n as f64 - first_batch as f64) / seconds,
        seconds,
    })
}

/// The worker's rate after it finished `n` jobs of `queue`: from the first
/// attempt started to the last outcome recorded.
pub async fn worker(pool: &PgPool, queue: &str, n: usize) -> anyhow::Result<Rate> {
    let (first_ms, last_ms): (i64, i64) = sqlx::query_as(
        "SELECT min(attempt_started_at), max(updated_at) FROM jobs \
         WHERE queue = $1 AND status = 'succeeded'",
    )
    .bind(queue)
    .fetch_one(pool)
    .await?;
    let seconds = ((last_ms - first_ms) as f64 / 1000.0).max(0.001);
    Ok(Rate {
        per_second: n as f64 / seconds,
        seconds,
    })
}
