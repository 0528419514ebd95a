//! PostgreSQL + embedded broker with real processes: several ingest and relay
//! processes on one database, and a PostgreSQL restart under load.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use sluice_broker::SubscribeOptions;
use sluice_tests::faults::post_until_answered;
use sluice_tests::pg::{server_url, PrivatePg, TempDb};
use sluice_tests::{Downstream, Mode, SluiceProcess};

/// How long a post may go unanswered (connection resets included).
const LIMIT: Duration = Duration::from_secs(30);

fn config(store: &str, downstream: &str) -> String {
    format!(
        r#"
data_dir = "./data"
[store]
url = "{store}"
[broker]
url = "embedded://./data/broker?poll_interval_ms=50"
[relay]
batch_size = 200
[[queues]]
name = "pg"
max_attempts = 20
backoff = {{ initial_ms = 50, max_ms = 500, multiplier = 2.0 }}
concurrency = {{ min = 1, max = 32 }}
handler = {{ type = "http", url = "{downstream}", timeout_ms = 3000 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_two_relays_ten_thousand_jobs_once_each() {
    let Some(server) = server_url() else { return };
    let db = TempDb::create(&server).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        config(&db.url, "http://127.0.0.1:9/unused"),
    )
    .unwrap();
    let listen = ["--listen", "127.0.0.1:0"];
    let ingest: Vec<SluiceProcess> = (0..2)
        .map(|_| SluiceProcess::start(dir.path(), &["ingest", listen[0], listen[1]], &[]).unwrap())
        .collect();
    let relays: Vec<SluiceProcess> = (0..2)
        .map(|_| SluiceProcess::start(dir.path(), &["relay", listen[0], listen[1]], &[]).unwrap())
        .collect();
    let client = reqwest::Client::new();
    let urls: Vec<String> = ingest.iter().map(|p| p.url("/v1/queues/pg/jobs")).collect();
    let t0 = Instant::now();
    let ids: Vec<String> = futures::stream::iter(0..10_000usize)
        .map(|i| {
            let (client, url) = (client.clone(), urls[i % 2].clone());
            async move {
                // as a careful producer: a connection reset leaves the outcome
                // unknown, so post again under the same idempotency key
                let body = json!({"payload": {"n": i}});
                let key = format!("job-{i}");
                let r = post_until_answered(&client, || url.clone(), &key, &body, LIMIT).await;
                assert_eq!(r.status(), 202, "job {i}");
                r.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    eprintln!(
        "10,000 jobs accepted by two ingest processes in {:?}",
        t0.elapsed()
    );

    // read the topic straight from the broker: every job exactly once
    let broker = sluice_broker::open(
        &format!("embedded://{}/data/broker", dir.path().display()),
        dir.path(),
    )
    .await
    .unwrap();
    let mut sub = broker
        .subscribe(
            "sluice.pg",
            SubscribeOptions {
                group: "verify".into(),
                max_in_flight: 20_000,
            },
        )
        .await
        .unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while counts.len() < ids.len() && Instant::now() < deadline {
        let batch = sub.recv(2000, Duration::from_millis(200)).await.unwrap();
        let tokens: Vec<_> = batch.iter().map(|d| d.token).collect();
        sub.ack(&tokens).await.unwrap();
        for d in batch {
            *counts.entry(d.attributes["id"].clone()).or_default() += 1;
        }
    }
    // anything published twice would arrive shortly after
    let late = sub.recv(2000, Duration::from_secs(1)).await.unwrap();
    for d in late {
        *counts.entry(d.attributes["id"].clone()).or_default() += 1;
    }
    let accepted: HashSet<&String> = ids.iter().collect();
    let missing = accepted
        .iter()
        .filter(|id| !counts.contains_key(**id))
        .count();
    let twice: usize = counts.values().map(|c| c - 1).sum();
    eprintln!(
        "published: {} distinct, {twice} twice, {missing} missing",
        counts.len()
    );
    assert_eq!(missing, 0, "accepted jobs never published");
    assert_eq!(twice, 0, "jobs published twice in normal operation");
    assert_eq!(counts.len(), ids.len(), "unknown jobs on the topic");
    for (i, r) in relays.iter().enumerate() {
        let m = client
            .get(r.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let n = sluice_tests::prom::Exposition::parse(&m)
            .unwrap()
            .total("sluice_relay_published_messages_total");
        eprintln!("relay {i} published {n}");
        assert!(
            n > 0.0,
            "relay {i} published nothing: both relays must share the work"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_loses_nothing_and_answers_503() {
    if server_url().is_none() {
        return;
    }
    let pg = PrivatePg::start().expect("a private PostgreSQL server (initdb as the postgres user)");
    let ds = Downstream::start(Duration::ZERO).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sluice.toml"), config(&pg.url(), &ds.url())).unwrap();
    let sluice =
        SluiceProcess::start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = sluice.url("/v1/queues/pg/jobs");
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let statuses: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..8 {
        let (client, url, accepted, statuses, stop, restarted) = (
            client.clone(),
            url.clone(),
            accepted.clone(),
            statuses.clone(),
            stop.clone(),
            restarted.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let key = match client
                    .post(&url)
                    .json(&json!({"payload": Mode::Ok.payload(i)}))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 202 => {
                        let v: Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .unwrap()
                            .push(v["id"].as_str().unwrap().to_string());
                        if restarted.load(Ordering::Relaxed) {
                            "202 after restart"
                        } else {
                            "202"
                        }
                        .to_string()
                    }
                    Ok(r) => {
                        let code = r.status().as_u16();
                        if code == 503 {
                            assert!(
                                r.headers().contains_key("retry-after"),
                                "503 without Retry-After"
                            );
                        }
                        code.to_string()
                    }
                    Err(e) if e.is_timeout() => "timeout".to_string(),
                    Err(_) => "error".to_string(),
                };
                *statuses.lock().unwrap().entry(key).or_default() += 1;
                i += 8;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop_server().unwrap();
    eprintln!("postgres stopped");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ready = client
        .get(sluice.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.start_server().unwrap();
    eprintln!("postgres started");
    restarted.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    eprintln!("responses during the run: {statuses:?}");
    assert_eq!(ready, 503, "/readyz must fail while PostgreSQL is down");
    assert!(
        statuses.get("503").copied().unwrap_or(0) > 0,
        "no 503 during the outage: {statuses:?}"
    );
    assert_eq!(
        statuses.get("timeout"),
        None,
        "requests hung during the outage: {statuses:?}"
    );
    let after_restart = statuses.get("202 after restart").copied().unwrap_or(0);
    assert!(
        after_restart > 0,
        "ingest did not recover after PostgreSQL came back: {statuses:?}"
    );

    let ids = accepted.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let arrivals = ds.arrivals();
        let missing = ids.iter().filter(|id| !arrivals.contains_key(*id)).count();
        if missing == 0 {
            let dups: usize = arrivals.values().map(|a| a.len() - 1).sum();
            eprintln!(
                "{} accepted jobs all delivered; duplicate deliveries: {dups}",
                ids.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted jobs lost",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        client
            .get(sluice.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
