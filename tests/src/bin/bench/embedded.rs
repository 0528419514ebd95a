//! `scripts/bench embedded`: ingest throughput and 202-to-handler latency of `sluice
//! serve` on the embedded default, with baselines measured in the same run on
//! the same machine:
//! - raw HTTP: the same client load against the no-op downstream itself;
//! - raw SQLite: one INSERT per transaction (WAL, synchronous=FULL) from the
//!   same number of concurrent tasks, what an app gets from one commit per
//!   request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_tests::{Downstream, SluiceProcess};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{arg, load, percentile};

const CLIENTS: usize = 32;

async fn sqlite_baseline(dir: &std::path::Path, secs: u64) -> anyhow::Result<f64> {
    let opts = SqliteConnectOptions::new()
        .filename(dir.join("baseline.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(CLIENTS as u32)
        .connect_with(opts)
        .await?;
    sqlx::query("CREATE TABLE jobs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        .execute(&pool)
        .await?;
    let (rate, _) = load(CLIENTS, secs, move |i| {
        let pool = pool.clone();
        async move {
            sqlx::query("INSERT INTO jobs (payload) VALUES (?)")
                .bind(json!({"n": i}).to_string())
                .execute(&pool)
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;
    Ok(rate)
}

pub async fn run() -> anyhow::Result<()> {
    let secs = arg("--seconds", 10);
    let latency_rate = arg("--latency-rate", 200);
    let ds = Downstream::start(Duration::ZERO).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!(
            "[[queues]]\nname = \"bench\"\nconcurrency = {{ min = 1, max = 64 }}\nhandler = {{ type = \"http\", url = \"{}\", timeout_ms = 10000 }}\n",
            ds.url()
        ),
    )?;
    let sluice = SluiceProcess::start(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warn,sluice=info")],
    )?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;

    // baseline 1: the same client load straight at the no-op downstream
    let ds_url = ds.url();
    let c = client.clone();
    let (raw_http, _) = load(CLIENTS, secs.min(5), move |i| {
        let (c, url) = (c.clone(), ds_url.clone());
        async move {
            let r = c
                .post(&url)
                .header("sluice-job-id", format!("raw-{i}"))
                .header("sluice-attempt", "1")
                .json(&json!({"n": i, "mode": "ok"}))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        }
    })
    .await;

    // baseline 2: one INSERT per transaction on SQLite, same concurrency
    let raw_sqlite = sqlite_baseline(dir.path(), secs.min(5)).await?;

    // sluice: accepted jobs/s with CLIENTS concurrent single-job POSTs
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let url = sluice.url("/v1/queues/bench/jobs");
    let (c, acc) = (client.clone(), accepted.clone());
    let (sluice_rate, ids) = load(CLIENTS, secs, move |i| {
        let (c, url, acc) = (c.clone(), url.clone(), acc.clone());
        async move {
            let r = c
                .post(&url)
                .json(&json!({"payload": {"n": i, "mode": "ok"}}))
                .send()
                .await
                .ok()?;
            if r.status() != 202 {
                return None;
            }
            let at = Instant::now();
            let v: Value = r.json().await.ok()?;
            let id = v["id"].as_str()?.to_string();
            acc.lock().unwrap().insert(id.clone(), at);
            Some(id)
        }
    })
    .await;
    let drain_start = Instant::now();
    while ds.arrivals().len() < ids.len() + raw_count(&ds)
        && drain_start.elapsed() < Duration::from_secs(300)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let saturated = latencies(&ds, &accepted.lock().unwrap());

    // latency at a moderate, fixed rate
    accepted.lock().unwrap().clear();
    let url = sluice.url("/v1/queues/bench/jobs");
    let n = (latency_rate * 5) as usize;
    let gap = Duration::from_secs_f64(1.0 / latency_rate as f64);
    let mut tick = tokio::time::interval(gap);
    let mut posts = Vec::new();
    for i in 0..n {
        tick.tick().await;
        let (c, url, acc) = (client.clone(), url.clone(), accepted.clone());
        posts.push(tokio::spawn(async move {
            let r = c
                .post(&url)
                .json(&json!({"payload": {"n": i, "mode": "ok"}}))
                .send()
                .await
                .ok()?;
            let at = Instant::now();
            let v: Value = r.json().await.ok()?;
            acc.lock()
                .unwrap()
                .insert(v["id"].as_str()?.to_string(), at);
            Some(())
        }));
    }
    for p in posts {
        let _ = p.await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = latencies(&ds, &accepted.lock().unwrap());

    println!("sluice ingest benchmark (embedded default: SQLite store + embedded broker), {CLIENTS} concurrent clients, {secs} s");
    println!(
        "  sluice accepted jobs/s:              {sluice_rate:>10.0}  ({} jobs)",
        ids.len()
    );
    println!(
        "  baseline raw HTTP no-op POSTs/s:     {raw_http:>10.0}  ratio sluice/raw_http = {:.2}",
        sluice_rate / raw_http
    );
    println!("  baseline SQLite 1 insert/commit/s:   {raw_sqlite:>10.0}  ratio sluice/raw_sqlite = {:.2}", sluice_rate / raw_sqlite);
    println!("  drained backlog in {:?}", drain_start.elapsed());
    print_latency("202 -> handler start, under saturation", &saturated);
    print_latency(
        &format!("202 -> handler start, at {latency_rate} jobs/s"),
        &steady,
    );
    Ok(())
}

fn raw_count(ds: &Downstream) -> usize {
    ds.arrivals()
        .keys()
        .filter(|k| k.starts_with("raw-"))
        .count()
}

fn latencies(ds: &Downstream, accepted: &HashMap<String, Instant>) -> Vec<Duration> {
    let arrivals = ds.arrivals();
    let mut v: Vec<Duration> = accepted
        .iter()
        .filter_map(|(id, at)| {
            arrivals
                .get(id)
                .and_then(|a| a.first())
                .map(|a| a.at.saturating_duration_since(*at))
        })
        .collect();
    v.sort();
    v
}

fn print_latency(what: &str, v: &[Duration]) {
    println!(
        "  {what}: n={} p50={:.1} ms p99={:.1} ms",
        v.len(),
        percentile(v, 0.50).as_secs_f64() * 1000.0,
        percentile(v, 0.99).as_secs_f64() * 1000.0
    );
}
