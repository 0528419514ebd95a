//! The broker conformance suite on the embedded broker, plus what only the
//! embedded broker promises: durability in its directory, redelivery after a
//! restart, sharing one directory between processes, URL errors.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_broker::conformance::{message, Fixture, Settings};
use sluice_broker::embedded::EmbeddedBroker;
use sluice_broker::{Broker, BrokerError, Delivery, SubscribeOptions, Subscription};
use tokio::time::Instant;

const VISIBILITY_MS: u64 = 500;

fn url(dir: &Path, options: &str) -> String {
    format!("embedded://{}?{options}", dir.display())
}

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = format!("visibility_timeout_ms={VISIBILITY_MS}&poll_interval_ms=25");
    let broker = EmbeddedBroker::open(&url(dir.path(), &opts), dir.path())
        .await
        .expect("open");
    Fixture::new(Arc::new(broker)).keeping(dir)
}

fn settings() -> Settings {
    Settings {
        visibility_timeout: Some(Duration::from_millis(VISIBILITY_MS)),
        counts_redeliveries: true,
        patience: Duration::from_secs(5),
    }
}

mod conformance {
    sluice_broker::broker_conformance!(super::fresh(), super::settings());
}

async fn open(dir: &Path, options: &str) -> Arc<dyn Broker> {
    Arc::new(
        EmbeddedBroker::open(&url(dir, options), dir)
            .await
            .expect("open"),
    )
}

async fn subscribe(broker: &Arc<dyn Broker>, topic: &str, group: &str) -> Box<dyn Subscription> {
    let options = SubscribeOptions {
        group: group.into(),
        max_in_flight: 1000,
    };
    broker.subscribe(topic, options).await.expect("subscribe")
}

async fn publish(broker: &Arc<dyn Broker>, topic: &str, n: usize) -> BTreeSet<String> {
    let messages: Vec<_> = (0..n).map(|i| message(topic, i)).collect();
    let ids = messages.iter().map(|m| m.job_id.to_string()).collect();
    let results = broker.publisher().publish(messages).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    ids
}

async fn collect(sub: &mut Box<dyn Subscription>, want: usize, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(
            sub.recv(want - got.len(), Duration::from_millis(200))
                .await
                .expect("recv"),
        );
    }
    got
}

fn ids(deliveries: &[Delivery]) -> BTreeSet<String> {
    deliveries
        .iter()
        .map(|d| d.attributes["id"].clone())
        .collect()
}

async fn ack(sub: &mut Box<dyn Subscription>, deliveries: &[Delivery]) {
    let tokens: Vec<_> = deliveries.iter().map(|d| d.token).collect();
    sub.ack(&tokens).await.expect("ack");
}

#[tokio::test]
async fn default_url_keeps_the_database_under_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let broker = sluice_broker::open("embedded://", data.path())
        .await
        .expect("open");
    assert_eq!(broker.backend(), "embedded");
    broker.ping().await.expect("ping");
    assert!(data.path().join("broker").join("broker.db").is_file());
}

#[tokio::test]
async fn messages_survive_reopening_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let topic = "sluice.durable".to_string();
    let sent = {
        let broker = open(dir.path(), "").await;
        broker.declare(std::slice::from_ref(&topic)).await.unwrap();
        let sent = publish(&broker, &topic, 25).await;
        drop(broker);
        sent
    };
    let broker = open(dir.path(), "").await;
    let mut sub = subscribe(&broker, &topic, "workers").await;
    let got = collect(&mut sub, sent.len(), Duration::from_secs(5)).await;
    assert_eq!(ids(&got), sent);
    assert!(got.iter().all(|d| d.redeliveries == 0));
    ack(&mut sub, &got).await;
}

#[tokio::test]
async fn unacked_messages_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let topic = "sluice.crash".to_string();
    let options = "visibility_timeout_ms=1500&poll_interval_ms=25";
    let (sent, leased_at) = {
        let broker = open(dir.path(), options).await;
        broker.declare(std::slice::from_ref(&topic)).await.unwrap();
        let mut sub = subscribe(&broker, &topic, "workers").await;
        let sent = publish(&broker, &topic, 3).await;
        let got = collect(&mut sub, 3, Duration::from_secs(5)).await;
        let leased_at = Instant::now();
        assert_eq!(ids(&got), sent);
        (sent, leased_at) // dropped without ack: a crashed worker
    };
    let broker = open(dir.path(), options).await;
    let mut sub = subscribe(&broker, &topic, "workers").await;
    let early = sub.recv(10, Duration::from_millis(200)).await.unwrap();
    if leased_at.elapsed() < Duration::from_millis(1400) {
        assert!(
            early.is_empty(),
            "redelivered before the visibility timeout: {early:?}"
        );
    }
    let mut got = early;
    got.extend(collect(&mut sub, 3 - got.len(), Duration::from_secs(6)).await);
    assert_eq!(ids(&got), sent);
    assert!(got.iter().all(|d| d.redeliveries == 1), "{got:?}");
    ack(&mut sub, &got).await;
}

#[tokio::test]
async fn publishing_to_an_undeclared_topic_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "").await;
    let topic = "sluice.known".to_string();
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let batch = vec![
        message(&topic, 0),
        message("sluice.unknown", 1),
        message(&topic, 2),
    ];
    let results = broker.publisher().publish(batch).await;
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    match &results[1] {
        Err(BrokerError::Rejected(m)) => assert!(
            m.contains("unknown topic") && m.contains("sluice.unknown"),
            "{m}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let options = SubscribeOptions {
        group: "g".into(),
        max_in_flight: 1,
    };
    match broker.subscribe("sluice.unknown", options).await {
        Err(BrokerError::Topology(m)) => assert!(m.contains("unknown topic"), "{m}"),
        Err(e) => panic!("expected a topology error, got {e}"),
        Ok(_) => panic!("subscribed to an undeclared topic"),
    }
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (url, needle) in [
        (
            "embedded://?visibility_timeout_ms=soon",
            "visibility_timeout_ms",
        ),
        ("embedded://?poll_interval_ms=0", "poll_interval_ms"),
        ("embedded://?speed=fast", "\"speed\""),
        ("embedded://broker-host/dir", "hosts are not supported"),
        ("nats://localhost", "unknown scheme"),
    ] {
        match sluice_broker::open(url, dir.path()).await {
            Err(e @ BrokerError::InvalidUrl(_)) => {
                assert!(e.to_string().contains(needle), "{url}: {e}")
            }
            Err(e) => panic!("{url}: expected an invalid url error, got {e}"),
            Ok(_) => panic!("{url}: opened"),
        }
    }
}

#[tokio::test]
async fn a_late_group_gets_messages_published_before_it_joined() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "").await;
    let topic = "sluice.late".to_string();
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let sent = publish(&broker, &topic, 5).await;
    let mut sub = subscribe(&broker, &topic, "late").await;
    let got = collect(&mut sub, 5, Duration::from_secs(5)).await;
    assert_eq!(ids(&got), sent);
    ack(&mut sub, &got).await;
}

#[tokio::test]
async fn compaction_deletes_only_what_every_group_acked() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedBroker::open(&url(dir.path(), ""), dir.path())
        .await
        .unwrap();
    let broker: Arc<dyn Broker> = Arc::new(
        EmbeddedBroker::open(&url(dir.path(), ""), dir.path())
            .await
            .unwrap(),
    );
    let topic = "sluice.compact".to_string();
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let mut one = subscribe(&broker, &topic, "one").await;
    let mut two = subscribe(&broker, &topic, "two").await;
    publish(&broker, &topic, 10).await;

    let got_one = collect(&mut one, 10, Duration::from_secs(5)).await;
    ack(&mut one, &got_one).await;
    assert_eq!(
        embedded.compact().await.unwrap(),
        0,
        "group two has not acked yet"
    );
    let got_two = collect(&mut two, 10, Duration::from_secs(5)).await;
    assert_eq!(got_two.len(), 10);
    ack(&mut two, &got_two[..4]).await;
    assert_eq!(embedded.compact().await.unwrap(), 4, "acked by both groups");
    ack(&mut two, &got_two[4..]).await;
    assert_eq!(embedded.compact().await.unwrap(), 6);
    // Positions are never reused after compaction.
    publish(&broker, &topic, 1).await;
    let next = collect(&mut one, 1, Duration::from_secs(5)).await;
    let seq = |d: &Delivery| {
        d.position
            .rsplit('/')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(got_one.iter().all(|d| seq(d) < seq(&next[0])));
}

#[tokio::test]
async fn a_500_message_batch_is_one_quick_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "").await;
    let topic = "sluice.batch".to_string();
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let mut sub = subscribe(&broker, &topic, "workers").await;
    let started = Instant::now();
    let sent = publish(&broker, &topic, 500).await;
    let took = started.elapsed();
    eprintln!("published 500 messages in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "publishing 500 messages took {took:?}"
    );
    let got = collect(&mut sub, 500, Duration::from_secs(10)).await;
    assert_eq!(ids(&got), sent);
    ack(&mut sub, &got).await;
}

// ------------------------------------------------- two processes, one dir

const CHILD_ENV: &str = "SLUICE_BROKER_TEST_CHILD";

/// Consumer half of `two_processes_compete_in_one_group`, run by it in a
/// separate process: records every delivery (`id redeliveries` lines in the
/// out file) before acking it, until the parent creates the stop file.
#[tokio::test]
#[ignore = "child process of two_processes_compete_in_one_group"]
async fn child_consumer() {
    let spec = std::env::var(CHILD_ENV).expect("started by two_processes_compete_in_one_group");
    let [dir, topic, group, out]: [&str; 4] = spec
        .split('\t')
        .collect::<Vec<_>>()
        .try_into()
        .expect("spec");
    let broker = open(Path::new(dir), "poll_interval_ms=10").await;
    let mut sub = subscribe(&broker, topic, group).await;
    std::fs::write(format!("{out}.ready"), b"").unwrap();
    let stop = format!("{out}.stop");
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut lines = String::new();
    while !Path::new(&stop).exists() && Instant::now() < deadline {
        let got = sub.recv(5, Duration::from_millis(50)).await.unwrap();
        for d in &got {
            lines.push_str(&format!("{} {}\n", d.attributes["id"], d.redeliveries));
        }
        std::fs::write(out, &lines).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        ack(&mut sub, &got).await;
    }
}

fn read_child(out: &Path) -> Vec<(String, u32)> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (id, r) = l.split_once(' ')?;
            Some((id.to_string(), r.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_compete_in_one_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), "poll_interval_ms=10").await;
    let topic = "sluice.shared".to_string();
    broker.declare(std::slice::from_ref(&topic)).await.unwrap();
    let mut sub = subscribe(&broker, &topic, "workers").await;

    let out = dir.path().join("child.out");
    let spec = format!(
        "{}\t{topic}\tworkers\t{}",
        dir.path().display(),
        out.display()
    );
    let child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_consumer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn child test process");
    let ready = dir.path().join("child.out.ready");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "child consumer did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let sent = publish(&broker, &topic, 200).await;
    let mut mine: Vec<(String, u32)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = sub.recv(5, Duration::from_millis(50)).await.unwrap();
        mine.extend(
            got.iter()
                .map(|d| (d.attributes["id"].clone(), d.redeliveries)),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        ack(&mut sub, &got).await;
        let seen: BTreeSet<&String> = mine.iter().map(|(id, _)| id).collect();
        let theirs = read_child(&out);
        if seen.len() + theirs.len() >= sent.len() || Instant::now() >= deadline {
            break;
        }
    }
    std::fs::write(dir.path().join("child.out.stop"), b"").unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("child exits")
        .unwrap();
    assert!(
        output.status.success(),
        "child consumer failed: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs = read_child(&out);

    let all: Vec<&(String, u32)> = mine.iter().chain(&theirs).collect();
    let distinct: BTreeSet<String> = all.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        distinct, sent,
        "every message consumed by one of the processes"
    );
    assert_eq!(
        all.len(),
        sent.len(),
        "a message was delivered twice (no lease expired)"
    );
    assert!(all.iter().all(|(_, r)| *r == 0));
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "both processes got work: {} / {}",
        mine.len(),
        theirs.len()
    );
}
