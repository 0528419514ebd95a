//! `scripts/bench kafka`: the Kafka backend against raw librdkafka clients in
//! the same run, on PostgreSQL and the broker at `SLUICE_TEST_KAFKA_BROKERS`
//! (default 127.0.0.1:9092).
//! (a) `sluice relay` draining a 100,000-row outbox backlog to Kafka, against
//!     a raw idempotent `acks=all` producer sending the same records (key,
//!     `ce_*` headers, body) and awaiting every delivery report; and the
//!     store's half of the relay alone (claim and mark, no broker), which
//!     bounds the relay's rate on this machine;
//! (b) `sluice worker` with the `noop` handler (`--handler log` for the one
//!     that logs each job) working off
//!     those 100,000 messages (each a store round trip to start it and one to
//!     record it), against a raw consumer reading the same topic; and the
//!     store's half of the worker alone (start and record, no broker).
//!
//! Rates are steady state: process start-up, connecting and group join are
//! left out on both sides. The relay is timed from the first poll of its
//! published count (`/metrics`) that saw a batch to the one that saw them
//! all (the rows of that first poll not counted), the raw producer from
//! the first send after one warm-up record was delivered; the worker from the
//! first attempt it started to the last outcome it recorded (store
//! timestamps), the raw consumer from the first record it got to the last.
//! Wall-clock figures including start-up are printed alongside.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::Message;
use sluice_tests::brokers::unique_topic;
use sluice_tests::cpu::CpuSample;
use sluice_tests::kafka::{kafka_url, KafkaTopics};
use sluice_tests::pg::TempDb;
use sluice_tests::SluiceProcess;
use sqlx::postgres::PgPoolOptions;

use crate::{arg, fill_backlog, steady};

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
    let handler = crate::handler_arg();
    // the worker's concurrency (its window of messages is sluice_worker::prefetch_window of this)
    let concurrency = arg("--concurrency", 64);
    // the relay's batch size, also that of sluice's publisher alone
    let relay_batch = arg("--relay-batch", 1000) as usize; // the relay's default
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
    // a queue (and so a worker group) of its own: tansu 0.6 keeps a killed
    // member of a reused group, with its partitions, for a while
    let queue = topic.trim_start_matches("sluice.").to_string();
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
             [relay]\nbatch_size = {relay_batch}\n\
             [[queues]]\nname = \"{queue}\"\ntopic = \"{topic}\"\nhandler = {{ type = \"{handler}\" }}\n\
             concurrency = {{ min = 1, max = {concurrency} }}\n\
             [[queues]]\nname = \"copy\"\ntopic = \"{copy}\"\n",
            db.url,
            kafka_url(&brokers, PARTITIONS)
        ),
    )?;
    // SLUICE_BENCH_LOG (a RUST_LOG filter) with SLUICE_TEST_ECHO=1 shows the
    // processes' logs.
    let log = std::env::var("SLUICE_BENCH_LOG").unwrap_or_else(|_| "warn,sluice=info".into());
    let quiet = [("RUST_LOG", log.as_str())];
    // ingest declares both queues' topics
    let ingest = SluiceProcess::start(dir.path(), &["ingest", "--listen", "127.0.0.1:0"], &quiet)?;
    let client = reqwest::Client::new();
    let url = ingest.url(&format!("/v1/queues/{queue}/jobs/batch"));
    fill_backlog(&client, &url, backlog, BATCH).await?;
    drop(ingest);

    // a copy of the backlog, for the store's half of the relay alone below
    crate::store_half::keep_outbox(&pool).await?;

    // (a) relay drain
    let t0 = Instant::now();
    let cpu0 = CpuSample::now();
    let relay = SluiceProcess::start(dir.path(), &["relay", "--listen", "127.0.0.1:0"], &quiet)?;
    let relay_steady = steady::relay(&relay, &queue, backlog, Duration::from_secs(900)).await?;
    let relay_wall = t0.elapsed().as_secs_f64();
    let relay_cpu = CpuSample::now().report_since(&cpu0, backlog);
    drop(relay);
    let relay = relay_steady;
    let (relay_rate, relay_steady) = (relay.per_second, relay.seconds);
    // (a, the store's half alone) the same backlog claimed and marked
    // without a broker
    let store_alone = crate::store_half::relay(&db.url, &pool, relay_batch, &[1, 2]).await?;

    // (b baseline) a raw consumer reading the topic the relay filled
    let cpu0 = CpuSample::now();
    let (records, consume) = read_all(&brokers, &topic, backlog).await?;
    let consume_cpu = CpuSample::now().report_since(&cpu0, backlog);
    // (a baseline) a raw producer sending the same records
    let cpu0 = CpuSample::now();
    let produce_secs = produce_all(&brokers, &copy, &records).await?;
    let produce_cpu = CpuSample::now().report_since(&cpu0, backlog);
    // (a, for reference) sluice's publisher alone, in relay-sized batches
    let alone_secs = publisher_alone(&brokers, &copy, &records, relay_batch).await?;

    let n = backlog as f64;
    let produce_rate = (n - 1.0) / produce_secs;
    let consume_rate = (n - 1.0) / consume.steady;
    println!("sluice Kafka benchmark: {backlog} messages, {PARTITIONS} partitions, broker {brokers}, PostgreSQL store");
    println!("  steady-state rates (start-up, connecting and group join excluded on both sides)");
    println!(
        "  (a) relay drain of the outbox to Kafka:          {relay_rate:>10.0} msgs/s ({relay_steady:.2} s first to last batch published; {:.0} msgs/s over {relay_wall:.1} s wall incl. start-up)",
        n / relay_wall
    );
    println!(
        "      raw rdkafka producer, same records:          {produce_rate:>10.0} msgs/s ({produce_secs:.2} s after a warm-up record)  ratio = {:.2} (target >= 0.8)",
        relay_rate / produce_rate
    );
    println!("      CPU per message: relay drain {relay_cpu}; raw producer {produce_cpu}");
    println!(
        "      sluice publisher alone, batches of {relay_batch}:     {:>10.0} msgs/s ({alone_secs:.2} s, no store)  ratio to raw = {:.2}",
        (n - 1.0) / alone_secs,
        ((n - 1.0) / alone_secs) / produce_rate
    );
    for d in &store_alone {
        println!(
            "      store alone, claim + mark in batches of {relay_batch}, {} loop(s): {:>8.0} rows/s (no broker)  ratio to raw = {:.2}",
            d.loops,
            d.per_second,
            d.per_second / produce_rate
        );
    }
    println!("      (a relay claims and marks every row too, on the same cores: it drains no faster than the best of these)");

    // (b) the worker with a no-op handler
    let t0 = Instant::now();
    let cpu0 = CpuSample::now();
    let worker = SluiceProcess::start(
        dir.path(),
        &["worker", "--listen", "127.0.0.1:0", "--queue", &queue],
        &quiet,
    )?;
    steady::wait_count(
        &pool,
        // 1 while any job is unfinished (read from the partial index)
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE queue = $1 AND status <> 'succeeded' LIMIT 1) AS any_left",
        &queue,
        |left| left == 0,
        "worker",
        Duration::from_secs(arg("--worker-limit", 300)),
    )
    .await?;
    let worker_wall = t0.elapsed().as_secs_f64();
    let worker_cpu = CpuSample::now().report_since(&cpu0, backlog);
    drop(worker);
    let work = steady::worker(&pool, &queue, backlog).await?;
    let (worker_rate, worker_steady) = (work.per_second, work.seconds);
    println!(
        "  (b) worker, {handler} handler (incl. store writes):  {worker_rate:>10.0} jobs/s ({worker_steady:.2} s first job started to last recorded; {:.0} jobs/s over {worker_wall:.1} s wall incl. start-up and group join)",
        n / worker_wall
    );
    println!(
        "      raw rdkafka consumer (group member), same topic: {consume_rate:>7.0} msgs/s ({:.2} s first record to last; {:.1} s incl. group join)  ratio = {:.2} (target >= 0.6)",
        consume.steady,
        consume.wall,
        worker_rate / consume_rate
    );
    println!("      CPU per message: worker {worker_cpu}; raw consumer {consume_cpu}");
    // (b, the store's half alone) the same jobs started and recorded, a
    // worker's window (concurrency × prefetch) at a time, without a broker
    let window = sluice_worker::prefetch_window(concurrency as usize, true);
    for d in crate::store_half::worker(&db.url, &pool, &queue, window, &[1, 2]).await? {
        println!(
            "      store alone, start + success in batches of {window}, {} loop(s): {:>8.0} jobs/s (no broker)  ratio to raw = {:.2}",
            d.loops,
            d.per_second,
            d.per_second / consume_rate
        );
    }
    println!("      (a worker starts and records every job too, on the same cores: it goes no faster than the best of these)");
    pool.close().await;
    drop(db);
    Ok(())
}

/// How long the raw consumer took.
struct Consumed {
    /// From its first record to its last.
    steady: f64,
    /// From subscribing (group join included) to its last record.
    wall: f64,
}

/// Reads `want` records of `topic` from the beginning as a member of a new
/// consumer group, as the worker does (no commits); returns them and the
/// times.
async fn read_all(brokers: &str, topic: &str, want: usize) -> anyhow::Result<(Vec<Raw>, Consumed)> {
    let brokers = brokers.to_string();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", unique_topic("sluice-bench-raw"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let t0 = Instant::now();
        consumer.subscribe(&[&topic])?;
        let mut first: Option<Instant> = None;
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            if t0.elapsed() > Duration::from_secs(600) {
                bail!("raw consumer read {} of {want} in 10 minutes", out.len());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => out.push({
                    first.get_or_insert_with(Instant::now);
                    Raw {
                        key: m.key().map(<[u8]>::to_vec),
                        headers: m
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        (h.key.to_string(), h.value.unwrap_or_default().to_vec())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        payload: m.payload().unwrap_or_default().to_vec(),
                    }
                }),
                Some(Err(e)) => bail!("raw consumer: {e}"),
                None => {}
            }
        }
        let steady = first.map_or(0.0, |f| f.elapsed().as_secs_f64()).max(0.001);
        let wall = t0.elapsed().as_secs_f64();
        Ok((out, Consumed { steady, wall }))
    })
    .await
    .context("raw consumer task")?
}

/// Sends `records` to `topic` with an idempotent `acks=all` producer: the
/// first alone (warming the connection up), then the rest all handed over at
/// once, every delivery report awaited; returns the seconds of the rest.
async fn produce_all(brokers: &str, topic: &str, records: &[Raw]) -> anyhow::Result<f64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()?;
    let Some((warm_up, rest)) = records.split_first() else {
        return Ok(0.001);
    };
    if let Err((e, _)) = send(&producer, topic, warm_up).await {
        bail!("raw producer: warm-up record not delivered: {e}");
    }
    let t0 = Instant::now();
    let results = join_all(rest.iter().map(|r| send(&producer, topic, r))).await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        bail!("raw producer: {failed} records not delivered");
    }
    Ok(t0.elapsed().as_secs_f64())
}

async fn send(
    producer: &FutureProducer,
    topic: &str,
    r: &Raw,
) -> Result<
    rdkafka::producer::future_producer::Delivery,
    (rdkafka::error::KafkaError, rdkafka::message::OwnedMessage),
> {
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
    producer
        .send(record, Timeout::After(Duration::from_secs(30)))
        .await
}

/// sluice's Kafka publisher without the store: `records` (their key, `ce_*`
/// headers and body) in batches of `batch`, one batch at a time as the relay
/// publishes; returns the seconds after a warm-up batch of one.
async fn publisher_alone(
    brokers: &str,
    topic: &str,
    records: &[Raw],
    batch: usize,
) -> anyhow::Result<f64> {
    use sluice_broker::kafka::KafkaBroker;
    use sluice_broker::{Broker, OutgoingMessage};
    let broker = KafkaBroker::open(&kafka_url(brokers, PARTITIONS))?;
    let publisher = broker.publisher();
    let message = |r: &Raw| {
        let mut m: OutgoingMessage = sluice_broker::conformance::message(topic, 0);
        m.key = r
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        m.attributes = r
            .headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("ce_")?;
                Some((name.to_string(), String::from_utf8_lossy(v).into_owned()))
            })
            .collect();
        m.body = r.payload.clone();
        m
    };
    let Some((warm_up, rest)) = records.split_first() else {
        return Ok(0.001);
    };
    if let Some(e) = publisher
        .publish(vec![message(warm_up)])
        .await
        .into_iter()
        .find_map(Result::err)
    {
        bail!("publisher: warm-up not delivered: {e}");
    }
    let t0 = Instant::now();
    for chunk in rest.chunks(batch.max(1)) {
        let results = publisher.publish(chunk.iter().map(message).collect()).await;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            bail!("publisher: {e}");
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}
