//! `scripts/bench [embedded|ingest|kafka]`: sluice's benchmarks, each reporting
//! its figures next to a baseline measured in the same run on the same
//! machine (these machines are shared and noisy; ratios are what count).
//! - `embedded` (default): HTTP ingest and 202-to-handler latency on the
//!   embedded default (SQLite + embedded broker).
//! - `ingest`: PostgreSQL ingest against pgbench, the batch endpoint against
//!   multi-row INSERTs, the relay's drain rate of a 100,000-row backlog, and
//!   the ingest load against an HTTP server that does no work.
//! - `amqp`: the relay and a worker on RabbitMQ against a raw lapin
//!   publisher and consumer on the same server.
//! - `kafka`: the relay's publish rate and the worker's throughput on Kafka
//!   against raw librdkafka producer and consumer, and the store's half of
//!   each alone.

use std::time::{Duration, Instant};

mod amqp;
mod ceiling;
mod embedded;
mod kafka;
mod postgres;
mod steady;
mod store_half;
mod wrk;

pub fn arg(name: &str, default: u64) -> u64 {
    text_arg(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value after `name` on the command line, if any.
fn text_arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

/// The worker's handler type in the broker benchmarks, `--handler`:
/// `noop` (no work, no log line) unless told otherwise, e.g. `log`; sluice
/// itself refuses an unknown type.
pub fn handler_arg() -> String {
    text_arg("--handler").unwrap_or_else(|| "noop".into())
}

/// Runs `clients` loops of `one` for `secs`; returns completions/s and the
/// per-call results.
pub async fn load<F, Fut, T>(clients: usize, secs: u64, one: F) -> (f64, Vec<T>)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<T>> + Send,
    T: Send + 'static,
{
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for c in 0..clients {
        let one = one.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = c;
            while Instant::now() < end {
                if let Some(v) = one(i).await {
                    out.push(v);
                }
                i += clients;
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    (rate, all)
}

/// The payload of the `i`th benchmark job (every benchmark sends the same
/// shape, so their figures compare).
pub fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({"n": i, "to": "user@example.com", "subject": "benchmark"})
}

/// Submits jobs `0..n` (payload [`payload`]) through the batch endpoint at
/// `url`, `batch` to a request; fails on any answer but 202.
pub async fn fill_backlog(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    batch: usize,
) -> anyhow::Result<()> {
    for start in (0..n).step_by(batch) {
        let jobs: Vec<_> = (start..n.min(start + batch))
            .map(|i| serde_json::json!({"payload": payload(i)}))
            .collect();
        let r = client
            .post(url)
            .json(&serde_json::json!({ "jobs": jobs }))
            .send()
            .await?;
        if r.status() != 202 {
            anyhow::bail!("batch submit answered {}", r.status());
        }
    }
    Ok(())
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What `--help` prints (before any build or connection).
const USAGE: &str = "\
usage: scripts/bench [embedded|ingest|amqp|kafka] [options]
  embedded (default)  HTTP ingest and 202-to-handler latency on SQLite + the embedded broker
                      [--seconds N] [--latency-rate R]
  ingest              PostgreSQL ingest against pgbench, the batch endpoint against
                      multi-row INSERTs, the relay's drain, the no-op HTTP ceiling
                      [--seconds N]  (PostgreSQL at SLUICE_TEST_POSTGRES_URL)
  amqp                relay and worker against raw lapin, RabbitMQ at SLUICE_TEST_AMQP_URL
                      [--backlog N] [--concurrency N] [--handler noop|log] [--relay-batch N]
  kafka               relay and worker against raw librdkafka, at SLUICE_TEST_KAFKA_BROKERS
                      [--backlog N] [--concurrency N] [--handler noop|log] [--relay-batch N]
                      [--worker-limit SECONDS]
The sluice binary is SLUICE_BIN (scripts/bench sets it), else the one built
beside this benchmark.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        None | Some("embedded") => embedded::run().await,
        Some(a) if a.starts_with("--") => embedded::run().await,
        Some("ingest") => postgres::run().await,
        Some("amqp") => amqp::run().await,
        Some("kafka") => kafka::run().await,
        Some(other) => {
            anyhow::bail!("unknown benchmark {other:?}: expected embedded, ingest, amqp or kafka")
        }
    }
}
