//! `scripts/bench amqp`: the AMQP backend on RabbitMQ against raw lapin on
//! the same server in the same run (PostgreSQL store):
//! (a) raw lapin publisher with confirms (one channel, persistent,
//!     mandatory, windows of 1,000 pipelined) vs (b) the relay draining a
//!     100,000-row outbox backlog;
//! (c) raw lapin consumer (manual ack of every message, prefetch as the
//!     worker's) vs (d) `sluice worker` with the `noop` handler (`--handler
//!     log` for the one that logs each job) working off the
//!     100,000 jobs the relay published.
//! Queues are the backend's default type (quorum), unique to the run and
//! deleted after.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use sluice_broker::amqp::AmqpBroker;
use sluice_broker::Broker;
use sluice_tests::brokers::{unique_topic, AmqpCleanup};
use sluice_tests::cpu::CpuSample;
use sluice_tests::pg::TempDb;
use sluice_tests::SluiceProcess;

use crate::steady;
use sqlx::postgres::PgPoolOptions;

use crate::{arg, fill_backlog, payload};

const BATCH: usize = 1000;
const WINDOW: usize = 1000;
/// Longest a sluice phase may take.
const LIMIT: Duration = Duration::from_secs(900);

async fn raw_connection(url: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio::current());
    Ok(Connection::connect(url, props).await?)
}

/// Headers like the relay's: CloudEvents attributes of a sluice job.
fn raw_properties(i: usize) -> BasicProperties {
    let id = uuid::Uuid::now_v7().to_string();
    let attrs = BTreeMap::from([
        ("specversion", "1.0".to_string()),
        ("id", id.clone()),
        ("source", "sluice".to_string()),
        ("type", "sluice.job".to_string()),
        ("sluicequeue", "bench".to_string()),
        ("sluiceattempt", "1".to_string()),
        ("time", "2026-01-01T00:00:00.000Z".to_string()),
    ]);
    let mut headers = FieldTable::default();
    for (k, v) in attrs {
        headers.insert(
            ShortString::from(format!("cloudEvents:{k}")),
            AMQPValue::LongString(LongString::from(v)),
        );
    }
    headers.insert(
        "sluice-key".into(),
        AMQPValue::LongString(LongString::from(format!("k{i}"))),
    );
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(id.into())
        .with_content_type("application/json".into())
        .with_headers(headers)
}

/// (a) publishes `n` messages to `exchange`, windows of [`WINDOW`]
/// pipelined, every confirm checked; returns messages/s.
async fn raw_publish(url: &str, exchange: &str, n: usize) -> anyhow::Result<f64> {
    let conn = raw_connection(url).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = serde_json::to_vec(&payload(0))?;
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = WINDOW.min(n - sent);
        let publishes = (0..k).map(|i| {
            let ch = &ch;
            let body = &body;
            async move {
                let confirm = ch
                    .basic_publish(exchange, "", options, body, raw_properties(sent + i))
                    .await?;
                let c = confirm.await?;
                anyhow::ensure!(c.is_ack() && c.take_message().is_none(), "not confirmed");
                Ok(())
            }
        });
        for r in futures::future::join_all(publishes).await {
            r?;
        }
        sent += k;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    let _ = conn.close(200, "done").await;
    Ok(rate)
}

/// sluice's publisher without the store: `n` messages in batches of
/// `batch`; returns messages/s. The messages stay queued and are counted by
/// the raw consumer (it consumes them too).
async fn publisher_alone(url: &str, topic: &str, n: usize, batch: usize) -> anyhow::Result<f64> {
    let broker = AmqpBroker::open(url).await?;
    let publisher = broker.publisher();
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = batch.min(n - sent);
        let messages = (0..k)
            .map(|i| {
                let mut m = sluice_broker::conformance::message(topic, sent + i);
                m.body = serde_json::to_vec(&payload(sent + i)).unwrap();
                m
            })
            .collect();
        let results = publisher.publish(messages).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            bail!("publish failed: {e}");
        }
        sent += k;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// (c) consumes `n` messages from `queue`, acking each; returns messages/s.
async fn raw_consume(url: &str, queue: &str, n: usize, prefetch: u16) -> anyhow::Result<f64> {
    let conn = raw_connection(url).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let t0 = Instant::now();
    let mut consumer = ch
        .basic_consume(
            queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for _ in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
            .await
            .context("raw consumer starved")?
            .context("consumer ended")??;
        d.ack(BasicAckOptions::default()).await?;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    let _ = conn.close(200, "done").await;
    Ok(rate)
}

pub async fn run() -> anyhow::Result<()> {
    let backlog = arg("--backlog", 100_000) as usize;
    // Worker concurrency (its prefetch is sluice_worker::prefetch_window of this) and relay batch size.
    let concurrency = arg("--concurrency", 64) as usize;
    let relay_batch = arg("--relay-batch", 1000); // the relay's default
    let handler = crate::handler_arg();
    let amqp = std::env::var("SLUICE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let server = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = TempDb::create(&server).await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await?;
    let topic = unique_topic("bench");
    let raw_topic = unique_topic("bench-raw");
    let _cleanup = AmqpCleanup::topics_with_dlq(&amqp, &[&topic, &raw_topic]);
    let broker = AmqpBroker::open(&amqp).await?;
    broker.declare(std::slice::from_ref(&raw_topic)).await?;
    drop(broker);

    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!(
            "data_dir = \"./data\"\n[store]\nurl = \"{}\"\n[broker]\nurl = \"{amqp}\"\n[relay]\nbatch_size = {relay_batch}\n[[queues]]\nname = \"bench\"\ntopic = \"{topic}\"\nconcurrency = {{ min = 1, max = {concurrency} }}\nhandler = {{ type = \"{handler}\" }}\n",
            db.url
        ),
    )?;
    let env = [("RUST_LOG", "warn,sluice=info")];
    let ingest = SluiceProcess::start(dir.path(), &["ingest", "--listen", "127.0.0.1:0"], &env)?;
    let client = reqwest::Client::new();
    let batch_url = ingest.url("/v1/queues/bench/jobs/batch");
    fill_backlog(&client, &batch_url, backlog, BATCH).await?;
    drop(ingest);

    // (a) raw publisher, then sluice's publisher alone (no store), then (b)
    // the relay, on the same server
    let cpu0 = CpuSample::now();
    let raw_pub = raw_publish(&amqp, &raw_topic, backlog).await?;
    let raw_pub_cpu = CpuSample::now().report_since(&cpu0, backlog);
    let alone = publisher_alone(&amqp, &raw_topic, backlog, relay_batch as usize).await?;
    let cpu0 = CpuSample::now();
    let relay = SluiceProcess::start(dir.path(), &["relay", "--listen", "127.0.0.1:0"], &env)?;
    let t0 = Instant::now();
    let steady = steady::relay(&relay, "bench", backlog, LIMIT).await?;
    let relay_wall = t0.elapsed();
    let relay_cpu = CpuSample::now().report_since(&cpu0, backlog);
    drop(relay);
    let relay = steady;
    let relay_rate = relay.per_second;

    // (c) raw consumer, then (d) the worker, each with backlog messages queued
    // as the worker's subscription sets it: at most AMQP's largest prefetch
    let prefetch =
        u16::try_from(sluice_worker::prefetch_window(concurrency, false)).unwrap_or(u16::MAX);
    let cpu0 = CpuSample::now();
    let raw_con = raw_consume(&amqp, &raw_topic, 2 * backlog, prefetch).await?;
    let raw_con_cpu = CpuSample::now().report_since(&cpu0, 2 * backlog);
    let cpu0 = CpuSample::now();
    let worker = SluiceProcess::start(dir.path(), &["worker", "--listen", "127.0.0.1:0"], &env)?;
    let worker_wall = steady::wait_count(
        &pool,
        // 1 while any job is unfinished (read from the partial index)
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE queue = $1 AND status <> 'succeeded' LIMIT 1) AS any_left",
        "bench",
        |left| left == 0,
        "worker",
        LIMIT,
    )
    .await?;
    let worker_cpu = CpuSample::now().report_since(&cpu0, backlog);
    drop(worker);
    let work = steady::worker(&pool, "bench", backlog).await?;
    let worker_rate = work.per_second;

    let n = backlog as f64;
    println!("sluice AMQP benchmark on RabbitMQ (PostgreSQL store), {backlog} messages per phase");
    println!("  sluice's rates are steady state, from the relay's published count and the store's timestamps (start-up and connecting excluded, as on the raw side)");
    println!("  (a) raw lapin publisher, confirms, windows of {WINDOW}:  {raw_pub:>10.0} msg/s");
    println!(
        "      sluice AmqpPublisher alone, batches of {relay_batch}:   {alone:>10.0} msg/s  ratio = {:.2}",
        alone / raw_pub
    );
    println!(
        "  (b) relay drain of the outbox backlog, batches of {relay_batch}: {relay_rate:>10.0} msg/s  ratio b/a = {:.2} (target >= 0.8; {:.2} s first to last batch published, {:.0} msg/s over {:.1} s wall)",
        relay_rate / raw_pub,
        relay.seconds,
        n / relay_wall.as_secs_f64(),
        relay_wall.as_secs_f64()
    );
    println!("      CPU per message: relay {relay_cpu}; raw publisher {raw_pub_cpu}");
    println!("  (c) raw lapin consumer, ack each, prefetch {prefetch}:    {raw_con:>10.0} msg/s");
    println!(
        "  (d) sluice worker, {handler} handler, {concurrency} concurrent:     {worker_rate:>10.0} jobs/s ratio d/c = {:.2} (target >= 0.85; {:.2} s first job started to last recorded, {:.0} jobs/s over {:.1} s wall)",
        worker_rate / raw_con,
        work.seconds,
        n / worker_wall.as_secs_f64(),
        worker_wall.as_secs_f64()
    );
    println!("      CPU per message: worker {worker_cpu}; raw consumer {raw_con_cpu}");
    pool.close().await;
    drop(db);
    Ok(())
}
