//! Steady-state rates of the relay and the worker, read from the store's own
//! timestamps (so process start-up, connecting and group joins are left out,
//! as they are on the raw clients' side), and a light completion poll that
//! does not load the PostgreSQL server it measures.

use std::time::{Duration, Instant};

use anyhow::bail;
use sluice_tests::process::SluiceProcess;
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

/// How often the relay's published count is read from its `/metrics`.
const METRICS_POLL: Duration = Duration::from_millis(20);

/// Waits (up to `limit`) until `relay` has published `n` rows of `queue`
/// (its `sluice_relay_published_messages_total`, read from its own
/// `/metrics`, which loads neither the store nor the broker measured), and
/// returns its rate:
/// the rows published after the first poll that saw any, over the time from
/// that poll to the one that saw all `n`.
pub async fn relay(
    relay: &SluiceProcess,
    queue: &str,
    n: usize,
    limit: Duration,
) -> anyhow::Result<Rate> {
    let (client, url) = (reqwest::Client::new(), relay.url("/metrics"));
    let series = format!("sluice_relay_published_messages_total{{queue=\"{queue}\"}} ");
    let t0 = Instant::now();
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let text = client.get(&url).send().await?.text().await?;
        let published = text
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map(|v| v.trim().parse::<f64>().map(|v| v as u64))
            .transpose()?
            .unwrap_or(0);
        let now = Instant::now();
        if published > 0 && first.is_none() {
            first = Some((now, published));
        }
        if published >= n as u64 {
            let (t1, c1) = first.unwrap_or((now, published));
            let seconds = now.duration_since(t1).as_secs_f64().max(0.001);
            return Ok(Rate {
                per_second: (published - c1) as f64 / seconds,
                seconds,
            });
        }
        if t0.elapsed() > limit {
            bail!("relay published {published} of {n} in {limit:?}");
        }
        tokio::time::sleep(METRICS_POLL).await;
    }
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
