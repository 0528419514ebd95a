//! `scripts/bench kafka`: the Kafka backend against raw librdkafka clients in
//! the same run, on PostgreSQL and the broker at `SLUICE_TEST_KAFKA_BROKERS`
//! (default 127.0.0.1:9092).
//! (a) `sluice relay` draining a 100,000-row outbox backlog to Kafka, against
//!     a raw idempotent `acks=all` producer sending the same records (key,
//!     `ce_*` headers, body) and awaiting every delivery report;
//! (b) `sluice worker` with a no-op handler (`log`, logging off) working off
//!     those 100,000 messages (each a store round trip to start it and one to
//!     record it), against a raw consumer reading the same topic.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use sluice_tests::brokers::unique_topic;
use sluice_tests::kafka::{kafka_url, KafkaTopics};
use sluice_tests::pg::TempDb;
use sluice_tests::SluiceProcess;
use sqlx::postgres::PgPoolOptions;

use crate::arg;

const BATCH: usize = 1000;
const PARTITIONS: u32 = 4;

/// A record as read back from the topic, to be sent again by the raw producer.
struct Raw {
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
}

pub async fn run() -> anyhow::Result<()> {
    let backlog = arg("--backlog", 100_000) as usize;
    let brokers =
        std::env::var("SLUICE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let server = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = TempDb::create(&server).await?;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await?;
    let topic = unique_topic("bench");
    let copy = unique_topic("bench-raw");
    let _topics = (
        KafkaTopics::of_queue(&brokers, &topic),
        KafkaTopics::of_queue(&brokers, &copy),
    );
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!(
            "data_dir = \"./data\"\n[store]\nurl = \"{}\"\n[broker]\nurl = \"{}\"\n\
             [[queues]]\nname = \"bench\"\ntopic = \"{topic}\"\nhandler = {{ type = \"log\" }}\n\
             concurrency = {{ min = 1, max = 64 }}\n\
             [[queues]]\nname = \"copy\"\ntopic = \"{copy}\"\n",
            db.url,
            kafka_url(&brokers, PARTITIONS)
        ),
    )?;
    let quiet = [("RUST_LOG", "warn,sluice=info")];
    // ingest declares both queues' topics
    let ingest = SluiceProcess::start(dir.path(), &["ingest", "--listen", "127.0.0.1:0"], &quiet)?;
    let client = reqwest::Client::new();
    let url = ingest.url("/v1/queues/bench/jobs/batch");
    for b in 0..backlog.div_ceil(BATCH) {
        let jobs: Vec<_> = (0..BATCH.min(backlog - b * BATCH))
            .map(|k| json!({"payload": {"n": b * BATCH + k, "to": "user@example.com", "subject": "benchmark"}}))
            .collect();
        let r = client
            .post(&url)
            .json(&json!({ "jobs": jobs }))
            .send()
            .await?;
        if r.status() != 202 {
            bail!("batch submit answered {}", r.status());
        }
    }
    drop(ingest);

    // (a) relay drain
    let t0 = Instant::now();
    let relay = SluiceProcess::start(dir.path(), &["relay", "--listen", "127.0.0.1:0"], &quiet)?;
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await?;
        if left == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(900) {
            bail!("relay did not drain the backlog in 15 minutes ({left} left)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let relay_secs = t0.elapsed().as_secs_f64();
    drop(relay);

    // (b baseline) a raw consumer reading the topic the relay filled
    let (records, consume_secs) = read_all(&brokers, &topic, backlog).await?;
    // (a baseline) a raw producer sending the same records
    let produce_secs = produce_all(&brokers, &copy, &records).await?;

    let n = backlog as f64;
    let (relay_rate, produce_rate) = (n / relay_secs, n / produce_secs);
    let consume_rate = n / consume_secs;
    println!("sluice Kafka benchmark: {backlog} messages, {PARTITIONS} partitions, broker {brokers}, PostgreSQL store");
    println!(
        "  (a) relay drain of the outbox to Kafka:          {relay_rate:>10.0} msgs/s ({relay_secs:.1} s)"
    );
    println!(
        "      raw rdkafka producer, same records:          {produce_rate:>10.0} msgs/s ({produce_secs:.1} s)  ratio = {:.2} (target >= 0.8)",
        relay_rate / produce_rate
    );

    // (b) the worker with a no-op handler
    let t0 = Instant::now();
    let worker = SluiceProcess::start(
        dir.path(),
        &["worker", "--listen", "127.0.0.1:0", "--queue", "bench"],
        &quiet,
    )?;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE queue = 'bench' AND status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await?;
        if done as usize >= backlog {
            break;
        }
        if t0.elapsed() > Duration::from_secs(arg("--worker-limit", 300)) {
            bail!(
                "worker did not finish in {:.0} s ({done} of {backlog} done)",
                t0.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker_secs = t0.elapsed().as_secs_f64();
    drop(worker);

    let worker_rate = n / worker_secs;
    println!(
        "  (b) worker, no-op handler (incl. store writes):  {worker_rate:>10.0} jobs/s ({worker_secs:.1} s, worker start-up and group join included)"
    );
    println!(
        "      raw rdkafka consumer, same topic:            {consume_rate:>10.0} msgs/s ({consume_secs:.1} s)  ratio = {:.2} (target >= 0.6)",
        worker_rate / consume_rate
    );
    pool.close().await;
    drop(db);
    Ok(())
}

/// Reads `want` records of `topic` from the beginning with a plain consumer;
/// returns them and the seconds it took (from assignment to the last record).
async fn read_all(brokers: &str, topic: &str, want: usize) -> anyhow::Result<(Vec<Raw>, f64)> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "sluice-bench-raw")
            .set("enable.auto.commit", "false")
            .create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)?;
            }
        }
        let t0 = Instant::now();
        consumer.assign(&tpl)?;
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            if t0.elapsed() > Duration::from_secs(600) {
                bail!("raw consumer read {} of {want} in 10 minutes", out.len());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push(Raw {
                    key: m.key().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                }),
                Some(Err(e)) => bail!("raw consumer: {e}"),
                None => {}
            }
        }
        Ok((out, t0.elapsed().as_secs_f64()))
    })
    .await
    .context("raw consumer task")?
}

/// Sends `records` to `topic` with an idempotent `acks=all` producer, all
/// handed over at once, every delivery report awaited; returns the seconds.
async fn produce_all(brokers: &str, topic: &str, records: &[Raw]) -> anyhow::Result<f64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()?;
    let t0 = Instant::now();
    let sends = records.iter().map(|r| {
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let mut record = FutureRecord::to(topic).payload(&r.payload).headers(headers);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        producer.send(record, Timeout::After(Duration::from_secs(30)))
    });
    let results = join_all(sends).await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        bail!("raw producer: {failed} records not delivered");
    }
    Ok(t0.elapsed().as_secs_f64())
}
