//! `scripts/bench ingest`: sluice ingest on PostgreSQL against what an
//! application gets from the same server in the same run.
//! (a) pgbench, one-row INSERT per transaction, 64 clients;
//! (b) `sluice ingest`, single-job POSTs from wrk, 64 concurrent connections
//!     (group commit), with p50/p99 202 latency; `synchronous_commit=on` for both;
//! (c) the batch endpoint (1,000 jobs a request) against multi-row INSERTs of
//!     the same rows;
//! (d) the relay's drain rate of a 100,000-row outbox backlog;
//! (e) the ceiling: the load of (b) against an HTTP server that does no
//!     work, the most any HTTP ingest serves on this machine driven so.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use sluice_tests::cpu::CpuSample;
use sluice_tests::pg::TempDb;
use sluice_tests::SluiceProcess;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, QueryBuilder};

use crate::{arg, ceiling, fill_backlog, load, payload, steady, wrk};

const CLIENTS: usize = 64;
const BATCH: usize = 1000;
const BACKLOG: i64 = 100_000;

fn pgbench(url: &str, secs: u64, script: &std::path::Path) -> anyhow::Result<f64> {
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &CLIENTS.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("run pgbench (Debian package postgresql-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .context("no tps line in pgbench output")
}

async fn job_count(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pool)
        .await?)
}

pub async fn run() -> anyhow::Result<()> {
    let secs = arg("--seconds", 10);
    let server = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = TempDb::create(&server).await?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(&db.url)
        .await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await?;
    // the baseline stores payloads as sluice's jobs table does (json)
    pool.execute("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload json NOT NULL, created_at bigint NOT NULL)")
        .await?;
    let dir = tempfile::tempdir()?;

    // (a) pgbench: one INSERT per transaction
    let script = dir.path().join("insert.sql");
    std::fs::write(
        &script,
        format!(
            "INSERT INTO bench_insert (payload, created_at) VALUES ('{}', 0);\n",
            payload(1)
        ),
    )?;
    let cpu0 = CpuSample::now();
    let pgbench_tps = pgbench(&db.url, secs, &script)?;
    // CPU is sampled before counting, so the count is not billed to the phase
    let cpu1 = CpuSample::now();
    let pgbench_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_insert")
        .fetch_one(&pool)
        .await?;
    let pgbench_cpu = cpu1.report_since(&cpu0, pgbench_rows as usize);

    // (b) sluice ingest, single-job POSTs
    write_config(dir.path(), &db.url)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let ingest = start_ready(dir.path(), "ingest").await?;
    // wrk drives the load (a C client, as pgbench is); the accepted count
    // is what the jobs table gained, not what the client saw.
    let before = job_count(&pool).await?;
    let body = json!({"payload": payload(1)}).to_string();
    let url = ingest.url("/v1/queues/bench/jobs");
    let t = Instant::now();
    let cpu0 = CpuSample::now();
    let wrk = wrk::post(dir.path(), &url, &body, CLIENTS, secs)?;
    let (elapsed, cpu1) = (t.elapsed(), CpuSample::now());
    let single_jobs = job_count(&pool).await? - before;
    let single_rate = single_jobs as f64 / elapsed.as_secs_f64();
    let single_cpu = cpu1.report_since(&cpu0, single_jobs as usize);

    // (e) the same load against an HTTP server that does no work: the most
    // any HTTP ingest can accept on this machine driven this way
    let cpu0 = CpuSample::now();
    let noop = ceiling::noop_http(dir.path(), &body, CLIENTS, secs).await?;
    let noop_cpu =
        CpuSample::now().report_since(&cpu0, (noop.requests_per_sec * secs as f64) as usize);

    // (c) batch endpoint against multi-row INSERTs of the same rows, 8 clients
    let url = ingest.url("/v1/queues/bench/jobs/batch");
    let c = client.clone();
    let before = job_count(&pool).await?;
    let cpu0 = CpuSample::now();
    let (batch_rps, accepted) = load(8, secs, move |i| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let jobs: Vec<_> = (0..BATCH)
                .map(|k| json!({"payload": payload(i * BATCH + k)}))
                .collect();
            let r = c
                .post(&url)
                .json(&json!({"jobs": jobs}))
                .send()
                .await
                .ok()?;
            (r.status() == 202).then_some(())
        }
    })
    .await;
    let batch_cpu = CpuSample::now().report_since(&cpu0, accepted.len() * BATCH);
    if (job_count(&pool).await? - before) as usize != accepted.len() * BATCH {
        bail!(
            "the jobs table did not gain the {} jobs accepted",
            accepted.len() * BATCH
        );
    }
    let p = pool.clone();
    let cpu0 = CpuSample::now();
    let (insert_rps, inserted) = load(8, secs, move |i| {
        let p = p.clone();
        async move {
            let mut qb = QueryBuilder::new("INSERT INTO bench_insert (payload, created_at) ");
            qb.push_values(0..BATCH, |mut b, k| {
                b.push_bind(payload(i * BATCH + k)).push_bind(0i64);
            });
            qb.build().execute(&p).await.ok().map(|_| ())
        }
    })
    .await;
    let insert_cpu = CpuSample::now().report_since(&cpu0, inserted.len() * BATCH);

    // (d) a database of its own holding exactly the backlog, drained by one
    // relay (the outbox above still holds the rows of (b) and (c))
    drop(ingest);
    let (backlog, drain, drain_cpu) = relay_drain(&server, &client).await?;

    println!(
        "sluice ingest benchmark on PostgreSQL (synchronous_commit={sync}), {secs} s per phase"
    );
    println!(
        "  (a) pgbench 1-row INSERT/transaction, {CLIENTS} clients:  {pgbench_tps:>10.0} rows/s"
    );
    println!(
        "  (b) sluice single-job POSTs, {CLIENTS} connections:       {single_rate:>10.0} jobs/s  ratio b/a = {:.2}",
        single_rate / pgbench_tps
    );
    println!(
        "      202 latency: p50 {:.1} ms, p99 {:.1} ms; {:.0} responses/s, {} not 2xx",
        wrk.p50.as_secs_f64() * 1000.0,
        wrk.p99.as_secs_f64() * 1000.0,
        wrk.requests_per_sec,
        wrk.non_2xx
    );
    println!("      CPU per row: (a) {pgbench_cpu}; (b) {single_cpu}");
    println!(
        "  (e) ceiling: the load of (b) against a no-op HTTP server: {:>7.0} responses/s = {:.2} × (a); the 3× target is {:.0}",
        noop.requests_per_sec,
        noop.requests_per_sec / pgbench_tps,
        3.0 * pgbench_tps
    );
    println!(
        "      202 latency: p50 {:.1} ms, p99 {:.1} ms; {} not 2xx; CPU per response (the server and wrk are both sluice-bench): {noop_cpu}",
        noop.p50.as_secs_f64() * 1000.0,
        noop.p99.as_secs_f64() * 1000.0,
        noop.non_2xx
    );
    let batch_rows = batch_rps * BATCH as f64;
    let insert_rows = insert_rps * BATCH as f64;
    println!(
        "  (c) sluice batch endpoint ({BATCH}/request, 8 clients):  {batch_rows:>10.0} jobs/s"
    );
    println!(
        "      multi-row INSERT of {BATCH} rows, 8 clients:        {insert_rows:>10.0} rows/s  ratio = {:.2}",
        batch_rows / insert_rows
    );
    println!("      CPU per row: sluice {batch_cpu}; INSERT {insert_cpu}");
    println!(
        "  (d) relay drain of {backlog} outbox rows to the embedded broker: {:.1} s = {:.0} rows/s",
        drain.as_secs_f64(),
        backlog as f64 / drain.as_secs_f64()
    );
    println!("      CPU per row: {drain_cpu}");
    pool.close().await;
    drop(db);
    Ok(())
}

/// A sluice.toml in `dir`: the store at `url`, the queue `bench`, the
/// embedded broker.
fn write_config(dir: &std::path::Path, url: &str) -> std::io::Result<()> {
    std::fs::write(
        dir.join("sluice.toml"),
        format!("data_dir = \"./data\"\n[store]\nurl = \"{url}\"\n[[queues]]\nname = \"bench\"\n"),
    )
}

/// Starts `sluice <role>` in `dir` and waits until its `/readyz` answers.
async fn start_ready(dir: &std::path::Path, role: &str) -> anyhow::Result<SluiceProcess> {
    let process = SluiceProcess::start(
        dir,
        &[role, "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warn,sluice=info")],
    )?;
    process
        .wait_ready(Duration::from_secs(60))
        .await
        .with_context(|| format!("{role} never became ready"))?;
    Ok(process)
}

/// (d): a fresh database on `server` filled with [`BACKLOG`] jobs through
/// the batch endpoint, then one relay (to the embedded broker) started and
/// timed until the outbox is empty. Returns the rows, the time and the CPU
/// per row.
async fn relay_drain(
    server: &str,
    client: &reqwest::Client,
) -> anyhow::Result<(i64, Duration, String)> {
    let db = TempDb::create(server).await?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await?;
    let dir = tempfile::tempdir()?;
    write_config(dir.path(), &db.url)?;
    let ingest = start_ready(dir.path(), "ingest").await?;
    let batch_url = ingest.url("/v1/queues/bench/jobs/batch");
    fill_backlog(client, &batch_url, BACKLOG as usize, BATCH).await?;
    drop(ingest);
    let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&pool)
        .await?;
    let t0 = Instant::now();
    let cpu0 = CpuSample::now();
    let relay = SluiceProcess::start(
        dir.path(),
        &["relay", "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "warn,sluice=info")],
    )?;
    steady::wait_count(
        &pool,
        // 1 while any row is left: a count would read every row each time
        "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE queue = $1 LIMIT 1) AS any_left",
        "bench",
        |left| left == 0,
        "relay drain",
        Duration::from_secs(900),
    )
    .await?;
    let drain = t0.elapsed();
    let cpu = CpuSample::now().report_since(&cpu0, backlog as usize);
    drop(relay);
    pool.close().await;
    drop(db);
    Ok((backlog, drain, cpu))
}
